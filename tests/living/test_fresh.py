"""Fresh results (#16.4): a row another process writes to a Milvus server is found by the running
API's next search (no restart, no wait), and a metadata field it brings appears in ``/fields``
and passes the filter check within the catalogue's bounds (at most 2 s).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from retrieval.api import create_app
from retrieval.api.field_catalogue import FIELDS_TTL_S, KEYS_MIN_REFRESH_S
from retrieval.config import Settings
from tests.api.helpers import wait_ready
from tests.support.images import write_image_files
from tests.support.milvus_server import EmbeddedServer

pytestmark = pytest.mark.server

REPO = Path(__file__).resolve().parents[2]
FRESH_S = 2.0  # the bound
WRITER = """
import sys
import numpy as np
from retrieval.stores import open_store
from retrieval.types import Record

uri, name = sys.argv[1], sys.argv[2]
with open_store(uri, name) as store:
    vector = np.zeros(store.info().dim, dtype=np.float32)
    vector[0] = 1.0
    store.upsert([Record(id="fresh-1", vector=vector, source="elsewhere/new.png",
                         metadata={"lens": "50mm"})])
print("written", flush=True)
"""


def test_a_row_another_process_writes_is_served_at_once(
    milvus_server: EmbeddedServer, tmp_path: Path, tiny_model_files: tuple[Path, Path]
) -> None:
    assert FIELDS_TTL_S <= FRESH_S and KEYS_MIN_REFRESH_S <= FRESH_S
    uri = milvus_server.uri
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    config, checkpoint = tiny_model_files
    flags = ["--uri", uri, "--collection", name, "--model", str(config), "--pretrained", "",
             "--checkpoint", str(checkpoint), "--device", "cpu"]
    images = write_image_files(tmp_path / "images", 3, ext=".png")
    rejects = ["--rejects", str(tmp_path / "rejects.jsonl")]  # not in the checkout
    assert main(["ingest", str(images[0].parent), "--quiet", *rejects, *flags]) == 0
    settings = Settings(uri=uri, collection=name, model=str(config), checkpoint=checkpoint,
                        pretrained=None, device="cpu", thumbnail_dir=tmp_path / "thumbs")
    lens = {"query": "x", "k": 10, "filter": {"lens": "50mm"}}
    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        assert len(client.post("/search", json={"query": "x", "k": 10}).json()["hits"]) == 3
        fields = {f["name"] for f in client.get("/fields").json()["fields"]}
        assert "lens" not in fields  # sampled and cached now
        unknown = client.post("/search", json=lens)
        assert unknown.status_code == 422, unknown.text

        writer = subprocess.run([sys.executable, "-c", WRITER, uri, name], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        assert writer.stdout.strip() == "written", writer.stderr

        # the next search and count see it: no wait, no restart
        hits = client.post("/search", json={"query": "x", "k": 10}).json()["hits"]
        assert "fresh-1" in {hit["id"] for hit in hits}
        assert client.get("/stats").json()["count"] == 4
        # the cached fields are at most FIELDS_TTL_S old, the filter check's KEYS_MIN_REFRESH_S
        time.sleep(max(FIELDS_TTL_S, KEYS_MIN_REFRESH_S))
        filtered = client.post("/search", json=lens)  # the filter check samples again...
        assert filtered.status_code == 200, filtered.text
        assert [hit["id"] for hit in filtered.json()["hits"]] == ["fresh-1"]
        fields = {f["name"] for f in client.get("/fields").json()["fields"]}
        assert "lens" in fields  # ...and /fields shows the same sample
