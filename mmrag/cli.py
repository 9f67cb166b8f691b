"""The `mmrag` console script: global options, then one module per subcommand."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from mmrag.commands import COMMANDS
from retrieval.config import Settings
from retrieval.errors import MmragError

SETTING_FLAGS = ("uri", "collection", "model", "pretrained", "checkpoint", "device")
# Loggers the application keeps quiet: every pymilvus failure is re-raised as a StoreError, so
# its own ERROR tracebacks are noise. Libraries never set this; the application does, here.
QUIET_LOGGERS = {"pymilvus": logging.CRITICAL}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="mmrag", description="Multimodal retrieval: ingest images, search, and ask."
    )
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("settings (override MMRAG_* variables)")
    group.add_argument("--uri", help="Milvus Lite file or http://host:19530 (MMRAG_URI)")
    group.add_argument("--collection", help="collection name (MMRAG_COLLECTION)")
    group.add_argument("--model", help="open_clip model name or mmrag-demo (MMRAG_MODEL)")
    group.add_argument("--pretrained", help="open_clip pretrained tag (MMRAG_PRETRAINED)")
    group.add_argument("--checkpoint", help="local checkpoint file (MMRAG_CHECKPOINT)")
    group.add_argument("--device", help="auto, cpu, cuda, cuda:N (MMRAG_DEVICE)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub, common)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with command-line flags taking precedence."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def configure_logging(level: str) -> None:
    """The application's logging: one format at ``level``, the QUIET_LOGGERS silenced."""
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    quiet_libraries()


def quiet_libraries() -> None:
    """Set the QUIET_LOGGERS' levels (each library is imported first: pymilvus configures its
    own loggers when it is imported, which would undo an earlier setting)."""
    for name, quiet in QUIET_LOGGERS.items():
        importlib.import_module(name)
        logging.getLogger(name).setLevel(quiet)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; user errors print one line and exit 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"mmrag: invalid settings: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        return int(args.run(args, settings) or 0)
    except MmragError as exc:
        print(f"mmrag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmrag {args.command}: interrupted", file=sys.stderr)
        return 130
