"""CLI fixtures: files whose names and captions try to drive the terminal, and the tiny model."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import pytest

from tests.support.images import make_test_image

REPO = Path(__file__).resolve().parents[2]
# Sets the terminal title and clears the screen when printed raw.
EVIL = "\x1b]0;PWNED\x07\x1b[2J"
EVIL_ESCAPED = "\\x1b]0;PWNED\\x07\\x1b[2J"
MARKUP = "[bold red]loud[/]"


def png_with_native_warnings(index: int) -> bytes:
    """A real PNG with chunks libpng warns about: an iCCP profile ('iCCP: too short', which
    mmrag drops before decoding) and a bKGD chunk ('bKGD: invalid'); pixels are fine."""
    ok, encoded = cv2.imencode(".png", make_test_image(index, 48, 64))
    assert ok
    data = encoded.tobytes()
    chunks = b"".join(
        struct.pack(">I", len(body)) + kind + body
        + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        for kind, body in ((b"iCCP", b"bogus\0\0" + zlib.compress(b"\0" * 200)),
                           (b"bKGD", b"\0"))
    )
    return data[:33] + chunks + data[33:]  # right after the signature and IHDR


@dataclass(frozen=True)
class HostileFiles:
    """A manifest of images with hostile names and captions, and the flags of a fresh db."""

    root: Path
    manifest: Path
    names: tuple[str, ...]

    def flags(self, db: str, tiny_model_files: tuple[Path, Path]) -> list[str]:
        """Global flags: the Lite file ``db`` under root, collection 'cli', the tiny model."""
        config, checkpoint = tiny_model_files
        return ["--uri", str(self.root / db), "--collection", "cli", "--model", str(config),
                "--pretrained", "", "--checkpoint", str(checkpoint), "--device", "cpu"]


@pytest.fixture(scope="module")
def hostile_files(tmp_path_factory: pytest.TempPathFactory) -> HostileFiles:
    """Three PNGs (bad ICC profiles) named and captioned to attack the terminal, one broken."""
    root = tmp_path_factory.mktemp("hostile")
    images = root / "images"
    images.mkdir()
    names = (f"evil{EVIL}.png", "[bold red]loud.png", "plain.png")
    rows = []
    for i, name in enumerate(names):
        (images / name).write_bytes(png_with_native_warnings(i))
        rows.append({"path": str(images / name), "caption": f"caption {i} {EVIL} {MARKUP}"})
    (images / f"broken{EVIL}.png").write_bytes(b"\x89PNG not an image")
    rows.append({"path": str(images / f"broken{EVIL}.png"), "caption": "broken"})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return HostileFiles(root, manifest, names)


def run_mmrag(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m mmrag ARGV`` as a user runs it (not a terminal: COLUMNS=80 sets the width)."""
    environment = {**os.environ, "COLUMNS": "80"}
    environment.pop("MMRAG_LOG_LEVEL", None)
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "mmrag", *argv], cwd=REPO, capture_output=True, text=True,
        env=environment, errors="surrogateescape", timeout=600,
    )
