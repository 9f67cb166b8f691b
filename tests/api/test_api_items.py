"""GET /items/{id} and /items/{id}/image: originals, thumbnails, video frames, traversal."""

from __future__ import annotations

import io
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from retrieval.api import create_app
from tests.api.helpers import VIDEO_ID, ApiData, error_of, wait_ready

_AUDIT_LOCK = threading.Lock()
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and args and isinstance(args[0], str | bytes):
        path = args[0].decode(errors="replace") if isinstance(args[0], bytes) else args[0]
        with _AUDIT_LOCK:
            _OPENED.append(path)


sys.addaudithook(_audit)


@pytest.fixture
def opened_files() -> Iterator[list[str]]:
    """Paths opened by this process (any thread) while the test runs."""
    global _OPENED
    _OPENED = []
    try:
        yield _OPENED
    finally:
        _OPENED = None


def test_item_fields(client: TestClient, api_data: ApiData) -> None:
    path = api_data.images[4]
    item_id = api_data.ids[str(path)]
    response = client.get(f"/items/{item_id}")
    assert response.status_code == 200
    item = response.json()
    assert item["id"] == item_id and item["source"] == str(path)
    assert item["metadata"] == api_data.metadata[item_id]
    assert item["caption"] == "a photo of a dog #4" and item["modality"] == "image"
    assert item["image_url"] == f"/items/{item_id}/image"
    assert item["collection"] == "items" and item["model_id"]


def test_original_bytes_and_content_type(client: TestClient, api_data: ApiData) -> None:
    for path, media in ((api_data.images[0], "image/jpeg"), (api_data.images[13], "image/png")):
        response = client.get(f"/items/{api_data.ids[str(path)]}/image")
        assert response.status_code == 200
        assert response.headers["content-type"] == media
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.content == path.read_bytes()


def test_thumbnail_is_cached_jpeg(client: TestClient, api_data: ApiData) -> None:
    path = api_data.images[3]  # 150x220 (h x w)
    url = f"/items/{api_data.ids[str(path)]}/image?size=64"
    first = client.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(first.content)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 64
        assert thumb.size[0] > thumb.size[1]  # aspect kept (wider than tall)
    cached = list((api_data.root / "thumbs").rglob("*.jpg"))
    assert cached and all(p.is_relative_to(api_data.root / "thumbs") for p in cached)
    assert client.get(url).content == first.content
    big = client.get(f"/items/{api_data.ids[str(path)]}/image?size=1024")
    with Image.open(io.BytesIO(big.content)) as thumb:
        assert thumb.size == (220, 150)  # never upscaled


@pytest.mark.parametrize("size", ["0", "15", "1025", "-5", "abc", "64.5"])
def test_thumbnail_size_is_checked(client: TestClient, api_data: ApiData, size: str) -> None:
    item_id = api_data.ids[str(api_data.images[0])]
    response = client.get(f"/items/{item_id}/image", params={"size": size})
    assert response.status_code == 422 and "size" in error_of(response)["message"]


def _frames(video: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(video))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB).astype(np.float32))
    capture.release()
    return frames


def test_video_frame_source(client: TestClient, api_data: ApiData) -> None:
    item = client.get(f"/items/{VIDEO_ID}").json()
    assert item["source"].endswith("clip.avi#t=0.5") and item["metadata"]["frame"] == 5
    response = client.get(f"/items/{VIDEO_ID}/image")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as frame:
        assert frame.size == (80, 64)
        served = np.asarray(frame.convert("RGB"), dtype=np.float32)
    errors = [float(np.abs(served - f).mean()) for f in _frames(api_data.video)]
    assert int(np.argmin(errors)) == 5 and errors[5] < 8.0
    thumb = client.get(f"/items/{VIDEO_ID}/image?size=32")
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert max(small.size) == 32


def test_unknown_ids_are_404(client: TestClient) -> None:
    for item_id in ("0" * 32, "nope", "a.b:c-d_e"):
        for suffix in ("", "/image", "/image?size=64"):
            response = client.get(f"/items/{item_id}{suffix}")
            assert response.status_code == 404, (item_id, suffix, response.text)
            assert error_of(response)["type"] == "item_not_found"
    assert client.get("/items/" + "a" * 32 + "?collection=no_such").status_code == 404


def test_malformed_ids_are_refused(client: TestClient) -> None:
    for item_id in ("a" * 129, "semi;colon", "sp ace", "quo\"te", "%00", "star*"):
        response = client.get(f"/items/{item_id}")
        assert response.status_code in (404, 422), (item_id, response.text)
        error_of(response)


TRAVERSALS = [
    "../../../../etc/passwd",
    "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%252e%252e%252fetc%252fpasswd",
    "..",
    "...",
    "..%00",
    "%2Fetc%2Fpasswd",
    "/etc/passwd",
    "//etc/passwd",
    "..\\..\\etc\\passwd",
    "....//....//etc/passwd",
]


def test_path_traversal_never_reads_outside_sources(
    client: TestClient, api_data: ApiData, opened_files: list[str]
) -> None:
    secret = str(api_data.secret)
    relative = "../" * 12 + secret.lstrip("/")
    attempts = [*TRAVERSALS, secret, secret.replace("/", "%2F"), relative,
                relative.replace("/", "%2F"), f"..%2F{api_data.secret.name}"]
    for attempt in attempts:
        for suffix in ("", "/image", "/image?size=64"):
            response = client.get(f"/items/{attempt}{suffix}")
            # "/items/.." normalises to "/", which is the web UI's own page.
            is_ui_page = response.status_code == 200 and response.url.path in ("/", "/image")
            assert is_ui_page or response.status_code in (404, 405, 422), (
                attempt, response.status_code,
            )
            assert b"TOP-SECRET" not in response.content and b"root:" not in response.content
    item_id = api_data.ids[str(api_data.images[1])]
    for params in ({"path": secret}, {"source": secret}, {"file": "/etc/passwd"}):
        response = client.get(f"/items/{item_id}/image", params=params)
        assert response.status_code == 200
        assert response.content == api_data.images[1].read_bytes()
    opened = list(opened_files)
    assert secret not in opened and "/etc/passwd" not in opened
    outside = [p for p in opened if p.startswith(str(api_data.root))
               and not p.startswith((str(api_data.root / "sources"), str(api_data.root / "thumbs"),
                                     str(api_data.root / "api.db")))]
    assert outside == []


def test_missing_source_file_is_410(api_data: ApiData, tmp_path: Path) -> None:
    path = api_data.images[9]
    moved = tmp_path / path.name
    shutil.move(path, moved)
    try:
        with TestClient(create_app(api_data.settings)) as other:
            wait_ready(other)
            response = other.get(f"/items/{api_data.ids[str(path)]}/image")
            assert response.status_code == 410 and error_of(response)["type"] == "source_gone"
            thumb = other.get(f"/items/{api_data.ids[str(path)]}/image?size=100")
            assert thumb.status_code == 410
    finally:
        shutil.move(moved, path)
