"""A bounded, deterministic schemathesis run against a real ``mmrag serve``.

The server runs as users run it, on loopback, over the demo collection, once without and once
with ``MMRAG_API_KEY``. Every check of ``st run --checks all`` must pass, except those below.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.conftest import DemoData, start_serve

EXAMPLES = 12  # per operation and phase: about 900 requests, seconds per server
API_KEY = "fuzz-key-0123456789"
# positive_data_acceptance: the API refuses some schema-valid requests by rules OpenAPI cannot
#   state (k + offset <= 16384, a conversation needs a user message, only http(s) URLs are
#   fetched, at most 6 form fields); the strict-input work narrows the rest.
# use_after_free: DELETE /ingest/{job_id} cancels a job, which stays readable with its final
#   state and counts (issue 16: "DELETE /ingest/{id} cancels"); schemathesis 4.32 applies no
#   per-operation check settings in its stateful phase, so the check is off for every route, and
#   DELETE /items/{id} -> 404 afterwards is pinned by tests/living/test_delete_items.py.
# (max_response_time runs only with --max-response-time: speed belongs in `mmrag bench`.)
EXCLUDED_CHECKS: tuple[str, ...] = ("positive_data_acceptance", "use_after_free")
ST = Path(sys.executable).with_name("st")


def _env(data: DemoData, api_key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(
        MMRAG_URI=data.uri,
        MMRAG_COLLECTION=data.collection,
        MMRAG_MODEL="mmrag-demo",
        MMRAG_PRETRAINED="",
        MMRAG_DEVICE="cpu",
        MMRAG_THUMBNAIL_DIR=str(data.root / "thumbs"),
        MMRAG_LOG_LEVEL="warning",
        PYTHONUNBUFFERED="1",
    )
    if api_key:
        env["MMRAG_API_KEY"] = api_key
    return env


@pytest.mark.slow
@pytest.mark.parametrize("api_key", [None, API_KEY], ids=["open", "keyed"])
def test_schemathesis_finds_nothing(
    demo_data: DemoData, tmp_path: Path, api_key: str | None
) -> None:
    log = tmp_path / "serve.log"
    process, base = start_serve(_env(demo_data, api_key), log, api_key)
    try:
        argv = [
            str(ST), "run", f"{base}/openapi.json", "--checks", "all",
            *(["--exclude-checks", ",".join(EXCLUDED_CHECKS)] if EXCLUDED_CHECKS else []),
            "--max-examples", str(EXAMPLES), "--workers", "1",
            # the same requests every run (a seed is not used in this mode)
            "--generation-deterministic", "--request-timeout", "60", "--no-color",
            "--report", "junit", "--report-dir", str(tmp_path / "report"),
        ]
        if api_key:
            argv += ["--header", f"X-API-Key: {api_key}"]
        env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        run = subprocess.run(  # in tmp_path: st keeps its example database in ./.schemathesis
            argv, capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path
        )
    finally:
        process.terminate()
        process.wait(30)
    summary = f"{run.stdout[-20_000:]}{run.stderr[-3_000:]}"
    assert run.returncode == 0, f"{summary}\n--- server log ---\n{log.read_text()[-5_000:]}"
