"""SIGTERM while answers stream: past the grace period each stream ends with an error event.

A real ``mmrag serve`` process answers with MMRAG_LLM=openai from a fake LLM that streams
slowly (longer than uvicorn's 10-second grace period); one /chat stream and one /v1 stream are
held open when the server gets SIGTERM. Each client must read a complete body whose last event
says the server stopped the answer, and the server must finish its shutdown.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from retrieval.config import Settings
from tests.api.helpers import free_port
from tests.chat.fake_openai_server import FakeOpenAI, FakeOpenAIServer

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 120.0
ASK = [{"role": "user", "content": "a cat sleeping on a sofa"}]


def serve(settings: Settings, fake: FakeOpenAI, root: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m mmrag serve`` over a copy of the collection, answering from ``fake``."""
    db = root / "served.db"
    shutil.copyfile(settings.uri, db)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_URI=str(db), MMRAG_COLLECTION=settings.collection, MMRAG_MODEL=str(settings.model),
        MMRAG_PRETRAINED="", MMRAG_CHECKPOINT=str(settings.checkpoint), MMRAG_DEVICE="cpu",
        MMRAG_LLM="openai", MMRAG_LLM_BASE_URL=fake.base_url, MMRAG_LLM_MODEL="fake-model",
        MMRAG_LLM_API_KEY="sk-test", MMRAG_LLM_VISION="off", MMRAG_LLM_MAX_RETRIES="0",
        MMRAG_THUMBNAIL_DIR=str(root / "thumbs"), PYTHONUNBUFFERED="1",
    )
    port = free_port()
    log = open(root / "serve.log", "wb")  # noqa: SIM115 - the process writes it until it ends
    process = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    log.close()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        assert process.poll() is None, (root / "serve.log").read_text()
        try:
            if httpx.get(f"{base}/ready", timeout=5, trust_env=False).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "mmrag serve was not ready in time"
        time.sleep(0.2)


class HeldStream(threading.Thread):
    """Reads one streamed answer to its end; ``started`` is set once the first event came."""

    def __init__(self, base: str, path: str, body: dict[str, Any]) -> None:
        super().__init__(daemon=True)
        self.base, self.path, self.body = base, path, body
        self.started = threading.Event()
        self.text = ""
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=120, trust_env=False) as client, \
                    client.stream("POST", self.path, json=self.body) as response:
                assert response.status_code == 200
                for piece in response.iter_text():  # a truncated body raises here
                    self.text += piece
                    if "\n\n" in self.text:
                        self.started.set()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.failure = exc
        finally:
            self.started.set()


@pytest.mark.slow
def test_sigterm_past_the_grace_period_ends_streams_with_an_error_event(
    rag_settings: Settings, tmp_path: Path
) -> None:
    fake = FakeOpenAI(reply=lambda body: "A red square [1]. " * 40, chunk_delay_s=0.5)
    with FakeOpenAIServer(fake):
        process, base = serve(rag_settings, fake, tmp_path)
        try:
            chat = HeldStream(base, "/chat", {"messages": ASK, "stream": True})
            v1 = HeldStream(base, "/v1/chat/completions",
                            {"model": "mmrag", "messages": ASK, "stream": True})
            for stream in (chat, v1):
                stream.start()
                assert stream.started.wait(60), "no first event"
            process.send_signal(signal.SIGTERM)
            for stream in (chat, v1):
                stream.join(90)
                assert not stream.is_alive(), "the stream did not end"
                assert stream.failure is None, f"{stream.path}: {stream.failure!r}"
            # uvicorn re-raises the SIGTERM it caught once its shutdown is complete
            assert process.wait(60) in (0, -signal.SIGTERM)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    log = (tmp_path / "serve.log").read_text()
    assert "timeout graceful shutdown exceeded" in log, log  # the grace period did pass
    assert "Application shutdown complete" in log and "Traceback" not in log, log

    blocks = chat.text.strip().split("\n\n")
    assert blocks[0].startswith("event: token")
    name, data = (line.split(": ", 1)[1] for line in blocks[-1].splitlines())
    assert name == "error"
    assert json.loads(data)["error"]["type"] == "server_shutting_down"
    assert "send the request again" in json.loads(data)["error"]["message"]

    lines = [b.removeprefix("data: ") for b in v1.text.strip().split("\n\n")]
    assert json.loads(lines[1])["choices"][0]["delta"]["content"]
    last = json.loads(lines[-1])["error"]
    assert last["code"] == "server_shutting_down" and last["type"] == "server_error"
