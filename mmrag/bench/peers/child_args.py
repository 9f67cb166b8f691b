"""The arguments every in-project peer child takes, and the files it reads."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def child_parser(description: str) -> argparse.ArgumentParser:
    """--folder (JPEG files), --model, --checkpoint, --db (a Milvus Lite file to write)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--folder", type=Path, required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--db", type=Path, required=True)
    return p


def child_command(module: str, folder: Path, model: str, checkpoint: Path, db: Path) -> list[str]:
    """``python -m module --folder ... --model ... --checkpoint ... --db ...``."""
    return [sys.executable, "-m", module, "--folder", str(folder), "--model", model,
            "--checkpoint", str(checkpoint), "--db", str(db)]


def jpeg_files(folder: Path) -> list[Path]:
    """The folder's JPEG files in name order (every tool sees the same list)."""
    return sorted(folder.glob("*.jpg"))


