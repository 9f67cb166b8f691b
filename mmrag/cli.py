"""The `mmrag` console script: global options, then one module per subcommand.

Parsing imports no model, store or web library (``mmrag --help`` answers at once): each
command module imports what its ``run`` needs when it runs.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmrag import __version__
from mmrag.commands import COMMANDS
from mmrag.logs import Verbosity, configure_logging, quiet_libraries
from retrieval.errors import MmragError

if TYPE_CHECKING:
    from retrieval.config import Settings

__all__ = ["build_parser", "configure_logging", "main", "program", "quiet_libraries"]

SETTING_FLAGS = ("uri", "collection", "model", "pretrained", "checkpoint", "device")
VERBOSE_HELP = "show library logs and warnings (as MMRAG_LOG_LEVEL=info does)"


class CommandParser(argparse.ArgumentParser):
    """An argument parser that answers an unknown command with the closest known ones."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        choices = action.choices
        if isinstance(action, argparse._SubParsersAction) and choices and value not in choices:
            close = difflib.get_close_matches(value, list(choices), n=2, cutoff=0.6)
            hint = f"Did you mean {' or '.join(map(repr, close))}? " if close else ""
            raise argparse.ArgumentError(
                None, f"unknown command {value!r}. {hint}Run 'mmrag --help' to list the commands."
            )
        super()._check_value(action, value)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = CommandParser(
        prog="mmrag", description="Multimodal retrieval: ingest images, search, and ask.",
        epilog="Run 'mmrag COMMAND --help' for a command's options. Settings also come from "
        "MMRAG_* variables (retrieval/config.py lists them all).",
    )
    parser.add_argument("--version", action="version", version=f"mmrag {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
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
    for command_parser in sub.choices.values():  # -v also after the command: mmrag search -v
        command_parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with command-line flags taking precedence."""
    from retrieval.config import Settings

    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in SETTING_FLAGS if getattr(args, name, None) is not None
    }
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand in this process; user errors print one line and exit 2."""
    return _run(argv, filter_native=False)


def program() -> int:
    """The console script: main() with native libraries' stderr noise filtered unless verbose."""
    return _run(None, filter_native=True)


def _run(argv: Sequence[str] | None, *, filter_native: bool) -> int:
    """Parse, set up logging (and the native stderr filter), then run the command."""
    args = build_parser().parse_args(argv)
    from pydantic import ValidationError  # after parsing: --help never loads it

    try:
        settings = settings_from_args(args)
    except ValidationError as exc:
        print(f"mmrag: invalid settings: {exc}", file=sys.stderr)
        return 2
    verbosity = Verbosity.chosen(settings.log_level, verbose=args.verbose)
    configure_logging(verbosity)
    if filter_native and not verbosity.libraries:
        from mmrag.native_stderr import filtered_native_stderr

        with filtered_native_stderr():
            return _dispatch(args, settings)
    return _dispatch(args, settings)


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """The command's exit code; MmragError and Ctrl-C become one line on stderr."""
    try:
        return int(args.run(args, settings) or 0)
    except MmragError as exc:
        print(f"mmrag {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mmrag {args.command}: interrupted", file=sys.stderr)
        return 130
