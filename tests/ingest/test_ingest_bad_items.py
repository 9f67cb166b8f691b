"""One bad item never stops a batch (#20.1, #20.2, #20.8): each is one reject, the rest ingests.

Non-UTF-8 file names are stored losslessly and served again by the API; FIFOs and devices named
like images are rejected without being opened; the rejects file is 0600 and quotes no contents.
"""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import cv2
from fastapi.testclient import TestClient

from ingest import IngestOptions, run_ingest
from ingest.rejects import RejectsFile
from ingest.sources import open_source
from retrieval.api.app import create_app
from retrieval.components import Components
from retrieval.config import Settings
from retrieval.source_names import SOURCE_BYTES_KEY, local_source
from tests.api.helpers import wait_ready
from tests.ingest.helpers import stored_records
from tests.support.images import make_test_image

OPTIONS = IngestOptions(batch_size=4, workers=2, fetch_workers=2)
SECRET = b"root:*:19000:0:99999:7:::\n"


def png_bytes(seed: int) -> bytes:
    """A small distinct PNG."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(make_test_image(seed, 40, 56), cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def ingest_folder(components: Components, folder: Path, rejects_path: Path):
    rejects = RejectsFile(rejects_path)
    try:
        return run_ingest(components, open_source(folder), OPTIONS, rejects=rejects)
    finally:
        rejects.close()


def test_non_utf8_name_fifo_device_and_secret_file_in_one_folder(
    tmp_path: Path, components: Components, make_image_files
) -> None:
    folder = make_image_files(3)[0].parent
    latin = os.path.join(os.fsencode(folder), b"lat\xe9in1.png")
    with open(latin, "wb") as handle:
        handle.write(png_bytes(90))
    os.mkfifo(folder / "pipe.jpg")  # reading it would block forever
    (folder / "device.jpg").symlink_to("/dev/zero")  # opening a device is never done
    (folder / "shadow.png").write_bytes(SECRET)
    rejects_path = tmp_path / "rejects.jsonl"

    summary = ingest_folder(components, folder, rejects_path)

    assert (summary.ingested, summary.duplicates, summary.rejected) == (4, 0, 3)
    reasons = {Path(r.source).name: r.reason for r in summary.rejects}
    assert reasons == {
        "pipe.jpg": "cannot read file: not a regular file but a FIFO (named pipe)",
        "device.jpg": "cannot read file: not a regular file but a character device",
        "shadow.png": "not a recognised image format (26 bytes)",
    }
    assert stat.S_IMODE(rejects_path.stat().st_mode) == 0o600
    text = rejects_path.read_text()
    assert "root:" not in text and len(text.splitlines()) == 3

    by_name = {Path(r.source).name: r for r in stored_records(components.store)}
    stored = by_name["lat\ufffdin1.png"]  # readable text; the exact bytes in the metadata
    assert base64.b64decode(stored.metadata[SOURCE_BYTES_KEY]) == latin
    assert os.fsencode(local_source(stored.source, stored.metadata)) == latin
    assert [n for n, r in by_name.items() if SOURCE_BYTES_KEY in r.metadata] == [
        "lat\ufffdin1.png"
    ]

    again = ingest_folder(components, folder, rejects_path)
    assert (again.ingested, again.duplicates, again.rejected) == (0, 4, 3)


def test_an_existing_rejects_file_keeps_its_mode_and_a_reason_never_quotes_bytes(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rejects.jsonl"
    path.write_text("old line\n")
    path.chmod(0o640)
    rejects = RejectsFile(path)
    rejects.write(os.fsdecode(b"/data/caf\xe9.jpg"), "broken PNG file (chunk b'root')", "decode")
    rejects.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert line["reason"] == "broken PNG file (chunk <bytes>)"
    assert line["source"] == "/data/caf\ufffd.jpg"
    assert base64.b64decode(line[SOURCE_BYTES_KEY]) == b"/data/caf\xe9.jpg"


def test_a_non_utf8_name_is_found_by_search_and_served_by_the_api(
    tmp_path: Path, settings: Settings, open_components
) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    latin = os.path.join(os.fsencode(folder), b"\xe9t\xe9.png")
    data = png_bytes(91)
    with open(latin, "wb") as handle:
        handle.write(data)
    (folder / "other.png").write_bytes(png_bytes(92))
    components = open_components()
    assert ingest_folder(components, folder, tmp_path / "r.jsonl").ingested == 2
    components.close()

    with TestClient(create_app(settings)) as client:
        wait_ready(client)
        found = client.post("/search/image", files={"file": ("q.png", data, "image/png")},
                            data={"k": "1"})
        assert found.status_code == 200, found.text
        (hit,) = found.json()["hits"]
        assert hit["source"] == str(folder / "\ufffdt\ufffd.png")
        original = client.get(f"/items/{hit['id']}/image")
        assert original.status_code == 200, original.text
        assert original.content == data
        thumb = client.get(f"/items/{hit['id']}/image", params={"size": 16})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
