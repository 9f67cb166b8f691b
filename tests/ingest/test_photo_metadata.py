"""What a photo library expects of a folder ingest (#16.6), on real files written here: JPEGs
with EXIF (date, camera, GPS IFD, orientation), HEIC (pillow-heif), AVIF (Pillow), a multi-page
TIFF, files of other types; stored fields filtered through the CLI and the API over loopback."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pillow_heif
import pytest
from PIL import Image

from ingest.file_metadata import file_fields
from mmrag.cli import main
from retrieval.api import create_app
from retrieval.config import Settings
from retrieval.imaging import decode_image
from retrieval.photo_metadata import photo_fields
from retrieval.stores import open_store
from tests.chat.serving import serve_app
from tests.ingest.helpers import stored_records
from tests.support.images import make_test_image

MTIME = 1_700_000_000  # 2023-11-14T22:13:20+00:00


def _exif(taken: str, make: str, model: str, *, orientation: int = 1,
          gps: tuple[float, float] | None = None, offset: str | None = None) -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = make, model, orientation
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = taken
    if offset:
        sub[0x9011] = offset
    if gps is not None:
        lat, lon = gps
        exif.get_ifd(0x8825).update({
            1: "N" if lat >= 0 else "S", 2: _dms(abs(lat)),
            3: "E" if lon >= 0 else "W", 4: _dms(abs(lon)),
        })
    return exif


def _dms(value: float) -> tuple[float, float, float]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    return (float(degrees), float(minutes), round((value - degrees - minutes / 60) * 3600, 4))


def _pil(index: int, height: int, width: int) -> Image.Image:
    return Image.fromarray(make_test_image(index, height, width))


def _save(path: Path, image: Image.Image, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)
    os.utime(path, (MTIME, MTIME))
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A small photo library: EXIF JPEGs, HEIC, AVIF, a 3-page TIFF and four other files."""
    root = tmp_path / "library"
    paris = _exif("2024:05:01 12:30:00", "Canon", "Canon EOS R5", orientation=6,
                  gps=(48.8583, 2.2945), offset="+02:00")
    _save(root / "2024" / "paris.jpg", _pil(1, 60, 80), exif=paris.tobytes(), quality=95)
    rio = _exif("2023:02:10 08:00:00", "Apple", "iPhone 13", gps=(-22.9519, -43.2105))
    _save(root / "2023" / "trip" / "rio.jpg", _pil(2, 64, 64), exif=rio.tobytes())
    heif = pillow_heif.from_pillow(_pil(3, 48, 72))
    heic = _exif("2024:08:15 18:00:00", "Apple", "iPhone 15 Pro").tobytes()
    (root / "phone").mkdir(parents=True)
    heif.save(root / "phone" / "IMG_0001.HEIC", exif=heic, quality=90)
    _save(root / "phone" / "still.avif", _pil(4, 40, 50))
    pages = [_pil(5, 70, 90), _pil(6, 30, 30), _pil(7, 50, 20)]
    _save(root / "scans" / "book.tif", pages[0], save_all=True, append_images=pages[1:])
    for name in ("notes.docx", "layers.psd", "more.psd", "README"):
        (root / name).write_bytes(b"not an image")
    return root


def test_photo_fields_read_the_header_and_exif() -> None:
    image = _pil(1, 60, 80)
    buffer = io.BytesIO()
    exif = _exif("2024:05:01 12:30:00", "Canon\x00", " Canon EOS R5 ", orientation=6,
                 gps=(48.8583, -2.2945), offset="+02:00")
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    fields = photo_fields(buffer.getvalue())
    assert fields.pop("gps_lat") == pytest.approx(48.8583, abs=1e-4)
    assert fields.pop("gps_lon") == pytest.approx(-2.2945, abs=1e-4)
    assert fields == {
        "width": 60, "height": 80,  # orientation 6: shown turned, as decode_image returns it
        "orientation": 6, "taken": "2024-05-01T12:30:00+02:00",
        "camera_make": "Canon", "camera_model": "Canon EOS R5",
    }
    assert decode_image(buffer.getvalue()).shape == (80, 60, 3)
    bad = _exif("0000:00:00 00:00:00", "", "", orientation=9)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=bad.tobytes())
    assert photo_fields(buffer.getvalue()) == {"width": 80, "height": 60}
    assert photo_fields(b"not an image") == {}


def test_multi_page_tiff_decodes_its_first_page() -> None:
    first, second = make_test_image(5, 70, 90), make_test_image(6, 30, 30)
    buffer = io.BytesIO()
    Image.fromarray(first).save(buffer, format="TIFF", save_all=True,
                                append_images=[Image.fromarray(second)])
    assert np.array_equal(decode_image(buffer.getvalue()), first)


def test_file_fields_name_the_folder_relative_to_the_root(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "x.jpg"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"12345")
    os.utime(path, (MTIME, MTIME))
    assert file_fields(str(path), "a/b/x.jpg") == {
        "name": "x.jpg", "folder": "a/b", "size": 5, "modified": "2023-11-14T22:13:20+00:00",
    }
    assert file_fields(str(tmp_path / "gone.jpg"), "gone.jpg") == {"name": "gone.jpg",
                                                                   "folder": ""}


def test_folder_ingest_stores_photo_fields_filterable_by_cli_and_api(
    library: Path, settings: Settings, cli_flags: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ingest", str(library), "--json", *cli_flags]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["ingested"], summary["rejected"]) == (5, 0)
    assert summary["skipped"] == 4
    assert summary["skipped_by_type"] == {"(no extension)": 1, ".docx": 1, ".psd": 2}

    with open_store(settings.uri, settings.collection) as store:
        by_name = {r.metadata["name"]: r.metadata for r in stored_records(store)}
    assert set(by_name) == {"paris.jpg", "rio.jpg", "IMG_0001.HEIC", "still.avif", "book.tif"}
    paris = by_name["paris.jpg"]
    assert paris["folder"] == "2024" and paris["modified"] == "2023-11-14T22:13:20+00:00"
    assert paris["size"] == (library / "2024" / "paris.jpg").stat().st_size
    assert (paris["width"], paris["height"], paris["orientation"]) == (60, 80, 6)
    assert (paris["taken"], paris["camera_make"], paris["camera_model"]) == (
        "2024-05-01T12:30:00+02:00", "Canon", "Canon EOS R5")
    assert paris["gps_lat"] == pytest.approx(48.8583, abs=1e-4)
    rio = by_name["rio.jpg"]
    assert rio["folder"] == "2023/trip"
    assert (rio["gps_lat"], rio["gps_lon"]) == pytest.approx((-22.9519, -43.2105), abs=1e-4)
    heic = by_name["IMG_0001.HEIC"]
    assert (heic["width"], heic["height"], heic["camera_model"]) == (72, 48, "iPhone 15 Pro")
    assert (by_name["still.avif"]["width"], by_name["still.avif"]["height"]) == (50, 40)
    assert (by_name["book.tif"]["width"], by_name["book.tif"]["height"]) == (90, 70)

    def cli_names(spec: dict[str, Any]) -> set[str]:
        code = main(["search", "photo", "-k", "10", "--json", "--filter", json.dumps(spec),
                     *cli_flags])
        assert code == 0
        hits = json.loads(capsys.readouterr().out)
        hits = hits["hits"] if isinstance(hits, dict) else hits
        return {Path(h["source"]).name for h in hits}

    in_2024 = {"taken": {"gte": "2024-01-01", "lt": "2025-01-01"}}
    assert cli_names(in_2024) == {"paris.jpg", "IMG_0001.HEIC"}
    assert cli_names({"camera_make": "Apple"}) == {"rio.jpg", "IMG_0001.HEIC"}
    assert cli_names({"folder": {"prefix": "2023"}, "gps_lat": {"lt": 0}}) == {"rio.jpg"}

    with serve_app(create_app(settings)) as base, httpx.Client(base_url=base,
                                                                trust_env=False) as http:
        response = http.post("/search", json={"query": "photo", "k": 10, "filter": {
            "camera_model": "Canon EOS R5", "taken": {"gte": "2024-05-01"}}})
        assert response.status_code == 200, response.text
        hits = response.json()["hits"]
        assert [h["metadata"]["name"] for h in hits] == ["paris.jpg"]
        assert hits[0]["metadata"]["taken"] == "2024-05-01T12:30:00+02:00"
        fields = {f["name"] for f in http.get("/fields").json()["fields"]}
        assert {"taken", "camera_make", "camera_model", "gps_lat", "folder", "name"} <= fields


def test_summary_names_skipped_types_and_an_empty_folder(
    tmp_path: Path, cli_flags: list[str], make_image_files,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = make_image_files(2)
    (files[0].parent / "a.docx").write_text("x")
    (files[0].parent / "b.psd").write_bytes(b"8BPS")
    assert main(["ingest", str(files[0].parent), *cli_flags]) == 0
    out = capsys.readouterr().out
    assert "ingested 2," in out
    assert "2 skipped: .docx, .psd (not an image, video or text type mmrag ingests)" in out
    assert "nothing to ingest" not in out

    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["ingest", str(empty), *cli_flags]) == 0
    out = capsys.readouterr().out
    assert f"nothing to ingest: {empty} has no image, video or text files" in out
    assert ".heic" in out and "skipped:" not in out
