"""POST /ingest against a real ``mmrag serve``: uploads, server paths under the allowed roots,
URLs from a local HTTP server, every refusal, the event stream, cancel and rerun.

The module ends with #16.7's load test: 16 clients searching while an API ingest of 500 images
runs. One server for the module, on a Lite file that does not exist until the first job creates it,
with an API key, ``MMRAG_INGEST_ROOTS`` set to one folder, private URLs allowed (the local
image server is on loopback), a small upload cap and room for one waiting job.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import httpx
import pytest

from tests.api.helpers import free_port
from tests.support.images import make_test_image, write_image_files

REPO = Path(__file__).resolve().parents[2]
KEY = "living-key"
UPLOAD_CAP = 200_000
SIZE = ((32, 32),)
WAIT_S = 120.0
CLIENTS = 16
IMAGES = 500


def png_bytes(index: int) -> bytes:
    """A distinct 32x32 PNG."""
    ok, data = cv2.imencode(".png", cv2.cvtColor(make_test_image(index, 32, 32), cv2.COLOR_RGB2BGR))
    assert ok
    return data.tobytes()


def start_server(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``python -m mmrag serve`` on a free loopback port, once its model is loaded (its
    collection may not exist yet: the first ingest creates it)."""
    port = free_port()
    with open(log, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    key = env.get("MMRAG_API_KEY")
    headers = {"X-API-Key": key} if key else {}
    deadline = time.monotonic() + WAIT_S
    with httpx.Client(base_url=base, timeout=5.0, trust_env=False, headers=headers) as probe:
        while True:
            if process.poll() is not None:
                pytest.fail(f"mmrag serve exited {process.returncode}:\n{log.read_text()}")
            try:
                ready = probe.get("/ready")
                body = ready.json()
                if ready.status_code == 200 or (
                    "query model" not in body["error"]["message"]
                    and body["error"]["details"]["collection_exists"] is False
                ):
                    return process, base
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"mmrag serve not ready in time:\n{log.read_text()}")
            time.sleep(0.2)


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop."""
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


class ImageHandler(BaseHTTPRequestHandler):
    """/img/<n>.png: an image; /slow.png: an image once the test releases it; else 404."""

    requested = threading.Event()
    release = threading.Event()

    def do_GET(self) -> None:
        if self.path == "/slow.png":
            type(self).requested.set()
            type(self).release.wait(WAIT_S)
            body = png_bytes(900)
        elif self.path.startswith("/img/") and self.path.endswith(".png"):
            body = png_bytes(700 + int(self.path[5:-4]))
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Live:
    """The running server and the folders around it."""

    base: str
    root: Path
    images: str  # the base URL of the local image server

    def client(self, key: str | None = KEY) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=WAIT_S, trust_env=False)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
         ) -> Iterator[Live]:
    config, checkpoint = tiny_model_files
    root = tmp_path_factory.mktemp("living")
    allowed = root / "roots"
    photos = allowed / "photos"
    write_image_files(photos, 6, sizes=SIZE, start=300)
    (photos / "layers.psd").write_bytes(b"8BPS not read")
    outside = root / "outside"
    write_image_files(outside, 1, sizes=SIZE, start=400)
    (photos / "linked.jpg").symlink_to(next(outside.iterdir()))  # a file out of the roots
    (allowed / "escape").symlink_to(outside, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_URI=str(root / "live.db"), MMRAG_COLLECTION="live", MMRAG_MODEL=str(config),
        MMRAG_CHECKPOINT=str(checkpoint), MMRAG_PRETRAINED="", MMRAG_DEVICE="cpu",
        MMRAG_API_KEY=KEY, MMRAG_INGEST_ROOTS=json.dumps([str(allowed)]),
        MMRAG_ALLOW_PRIVATE_URLS="true", MMRAG_MAX_UPLOAD_BYTES=str(UPLOAD_CAP),
        MMRAG_INGEST_QUEUE="1",
        MMRAG_LOG_LEVEL="warning", PYTHONUNBUFFERED="1",
    )
    images = ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    threading.Thread(target=images.serve_forever, daemon=True).start()
    process, base = start_server(env, root / "serve.log")
    try:
        yield Live(base, root, f"http://127.0.0.1:{images.server_address[1]}")
    finally:
        ImageHandler.release.set()
        stop_server(process)
        images.shutdown()
        images.server_close()


def follow(client: httpx.Client, job_id: str) -> list[tuple[str, dict]]:
    """Every event of a job's stream, until its ``done`` event."""
    events = []
    with client.stream("GET", f"/ingest/{job_id}/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: "):]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[len("data: "):])))
    assert events and events[-1][0] == "done"
    return events


def run(client: httpx.Client, **request: object) -> dict:
    """Start a job, follow it to the end and return the finished job."""
    started = client.post("/ingest", **request)  # type: ignore[arg-type]
    assert started.status_code == 202, started.text
    assert started.headers["location"] == f"/ingest/{started.json()['id']}"
    return follow(client, started.json()["id"])[-1][1]


def count(client: httpx.Client) -> int:
    return int(client.get("/stats").json()["count"])


def test_uploads_many_files_with_rejects_followed_by_the_stream(live: Live) -> None:
    images = [png_bytes(i) for i in range(10)]
    files = [("files", (f"trip/day1/p{i}.png", data, "image/png")) for i, data in enumerate(images)]
    files += [
        ("files", ("again.png", images[0], "image/png")),  # same bytes: a duplicate
        ("files", ("notes.txt", b"not an image at all", "text/plain")),
        ("files", ("huge.png", b"\x89PNG" + b"0" * UPLOAD_CAP, "image/png")),
    ]
    with live.client() as client:
        started = client.post("/ingest", files=files)
        assert started.status_code == 202, started.text
        assert started.json()["state"] in ("queued", "running")
        events = follow(client, started.json()["id"])
        assert {name for name, _ in events} <= {"progress", "done"}
        job = events[-1][1]
        assert job["state"] == "done" and job["error"] is None
        assert job["counts"] == {"ingested": 10, "duplicates": 1, "rejected": 2, "skipped": 0}
        assert job["progress"] == {"done": 13, "total": 13}
        reasons = {r["source"]: r["reason"] for r in job["rejects"]}
        assert set(reasons) == {"notes.txt", "huge.png"}
        assert "not a recognised image format" in reasons["notes.txt"]
        assert "MMRAG_MAX_UPLOAD_BYTES" in reasons["huge.png"]
        assert count(client) == 10
        hit = client.post("/search/image", files={"file": ("q.png", images[3])}).json()["hits"][0]
        item = client.get(f"/items/{hit['id']}").json()
        assert item["metadata"]["name"] == "p3.png" and item["metadata"]["folder"] == "trip/day1"
        assert client.get(hit["image_url"]).content == images[3]  # the kept upload is served
    kept = live.root / "live.uploads"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o700
    assert len([p for p in kept.iterdir() if p.is_file()]) == 10  # no reject kept
    assert not list((kept / "ingest-spool").iterdir())  # the job's spool is gone


def test_the_api_key_applies(live: Live) -> None:
    with live.client(key=None) as client:
        for response in (client.post("/ingest", json={"urls": [f"{live.images}/img/1.png"]}),
                         client.get("/ingest"), client.get("/ingest/0123456789abcdef")):
            assert response.status_code == 401


def test_a_folder_under_the_roots_with_a_link_out_of_them(live: Live) -> None:
    photos = live.root / "roots" / "photos"
    with live.client() as client:
        before = count(client)
        job = run(client, json={"paths": [str(photos)]})
        assert job["state"] == "done", job
        assert job["counts"] == {"ingested": 6, "duplicates": 0, "rejected": 1, "skipped": 1}
        assert job["skipped_by_type"] == {".psd": 1}
        [reject] = job["rejects"]
        assert reject["source"].endswith("linked.jpg") and "MMRAG_INGEST_ROOTS" in reject["reason"]
        assert count(client) == before + 6
        again = run(client, json={"paths": [str(photos / "img_0300.jpg"), str(photos)]})
        assert again["counts"]["ingested"] == 0 and again["counts"]["duplicates"] == 7


def test_a_manifest_row_out_of_the_roots_is_a_reject(live: Live) -> None:
    allowed = live.root / "roots"
    outside = next((live.root / "outside").iterdir())
    write_image_files(allowed / "listed", 2, sizes=SIZE, start=320)
    manifest = allowed / "listed.csv"
    manifest.write_text(f"path,caption\nlisted/img_0320.jpg,a listed photo\n"
                        f"listed/img_0321.jpg,another\n{outside},out of the roots\n")
    with live.client() as client:
        job = run(client, json={"paths": [str(manifest)]})
        assert job["counts"] == {"ingested": 2, "duplicates": 0, "rejected": 1, "skipped": 0}
        [reject] = job["rejects"]
        assert reject["source"] == str(outside) and "MMRAG_INGEST_ROOTS" in reject["reason"]
        captions = {hit["caption"] for hit in client.post(
            "/search", json={"query": "photo", "k": 1000}).json()["hits"]}
        assert {"a listed photo", "another"} <= captions
        assert "out of the roots" not in captions


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/etc", 403, "outside the folders"),
        ("{roots}/escape", 403, "symlink out of"),
        ("{roots}/photos/../../outside", 403, "'..'"),
        ("{roots}/nothing-here", 404, "does not exist"),
        ("photos", 422, "relative"),
    ],
)
def test_server_paths_that_are_refused(live: Live, path: str, status: int, words: str) -> None:
    with live.client() as client:
        before = count(client)
        text = path.format(roots=live.root / "roots")
        response = client.post("/ingest", json={"paths": [text]})
        assert response.status_code == status, response.text
        assert words in response.json()["error"]["message"]
        assert count(client) == before


def test_bad_requests_change_nothing(live: Live) -> None:
    with live.client() as client:
        before = count(client)
        jobs = len(client.get("/ingest").json()["jobs"])
        assert client.post("/ingest", json={}).status_code == 422
        assert client.post("/ingest", json={"urls": ["ftp://example.com/a.png"]}).status_code == 422
        assert client.post("/ingest", json={"urls": [1]}).status_code == 422
        assert client.post("/ingest", content=b"x", headers={"content-type": "text/plain"}
                           ).status_code == 415
        assert client.post("/ingest", files={"other": ("a.png", png_bytes(1))}).status_code == 422
        assert client.get("/ingest/0123456789abcdef").status_code == 404
        assert client.get("/ingest/not-a-job").status_code == 422
        assert count(client) == before
        assert len(client.get("/ingest").json()["jobs"]) == jobs


def test_urls_through_the_fetcher(live: Live) -> None:
    urls = [f"{live.images}/img/{i}.png" for i in range(3)] + [f"{live.images}/missing.png"]
    with live.client() as client:
        job = run(client, json={"urls": urls})
        assert job["counts"] == {"ingested": 3, "duplicates": 0, "rejected": 1, "skipped": 0}
        [reject] = job["rejects"]
        assert reject["source"].endswith("/missing.png") and reject["stage"] == "fetch"
        assert "404" in reject["reason"]


def test_cancel_keeps_what_was_written_and_a_rerun_finishes(live: Live) -> None:
    uploads = [("files", (f"c{i}.png", png_bytes(500 + i), "image/png")) for i in range(20)]
    slow = {"urls": [f"{live.images}/slow.png"]}
    with live.client() as client:
        before = count(client)
        running = client.post("/ingest", json=slow).json()
        assert ImageHandler.requested.wait(WAIT_S)  # the job is inside its fetch
        queued = client.post("/ingest", files=uploads).json()
        assert queued["state"] == "queued"
        full = client.post("/ingest", files=uploads[:1])  # MMRAG_INGEST_QUEUE=1 is waiting
        assert full.status_code == 429 and full.headers["retry-after"]
        assert "MMRAG_INGEST_QUEUE" in full.json()["error"]["message"]
        cancelled = client.delete(f"/ingest/{queued['id']}").json()
        assert cancelled["state"] == "cancelled" and cancelled["counts"]["ingested"] == 0
        assert client.delete(f"/ingest/{queued['id']}").status_code == 409
        asked = client.delete(f"/ingest/{running['id']}").json()
        assert asked["cancel_requested"] and asked["state"] == "running"
        ImageHandler.release.set()
        stopped = follow(client, running["id"])[-1][1]
        assert stopped["state"] == "cancelled" and stopped["counts"]["ingested"] == 0
        assert "what was written stays" in stopped["message"]
        listed = [job["id"] for job in client.get("/ingest").json()["jobs"]]
        assert listed[:2] == [queued["id"], running["id"]]
        assert count(client) == before
        # the same uploads again, cancelled while running: what it wrote stays, and a rerun adds
        # the rest without a duplicate row
        first = client.post("/ingest", files=uploads).json()
        client.delete(f"/ingest/{first['id']}")
        first = follow(client, first["id"])[-1][1]
        assert first["state"] in ("cancelled", "done")
        written = first["counts"]["ingested"]
        assert count(client) == before + written
        rerun = run(client, files=uploads)
        assert rerun["counts"]["ingested"] == 20 - written
        assert rerun["counts"]["duplicates"] == written
        assert count(client) == before + 20


def test_16_clients_search_while_500_images_are_ingested(live: Live) -> None:
    """#16.7: no request fails while the job runs, and the final count is exact."""
    with live.client() as client:
        before = count(client)

        files = [("files", (f"p{i:03d}.png", png_bytes(1000 + i), "image/png"))
                 for i in range(IMAGES)]
        job = client.post("/ingest", files=files)
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]

        done = threading.Event()
        failures: list[str] = []
        answered = [0] * CLIENTS

        def search(index: int) -> None:
            with live.client() as own:
                turn = 0
                while not done.is_set():
                    turn += 1
                    try:
                        if turn % 8 == 0:
                            response = own.get(f"/ingest/{job_id}")
                        else:
                            response = own.post("/search", json={
                                "query": f"a photo number {index} {turn}", "k": 10})
                        if response.status_code != 200:
                            failures.append(f"{response.status_code} {response.text[:200]}")
                    except httpx.HTTPError as exc:
                        failures.append(f"{type(exc).__name__}: {exc}")
                    answered[index] += 1

        threads = [threading.Thread(target=search, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            finished = follow(client, job_id)[-1][1]
        finally:
            done.set()
            for thread in threads:
                thread.join(WAIT_S)
        assert failures == []
        assert all(answered), answered  # every client was answered while the job ran
        assert finished["state"] == "done", finished
        assert finished["counts"] == {"ingested": IMAGES, "duplicates": 0, "rejected": 0,
                                      "skipped": 0}
        assert count(client) == before + IMAGES
        hits = client.post("/search", json={"query": "a photo", "k": 1000}).json()["hits"]
        assert len(hits) == before + IMAGES == len({hit["id"] for hit in hits})
