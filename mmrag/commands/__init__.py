"""Subcommands: each module has add_parser(subparsers, common) and a run(args, settings)."""

from types import ModuleType

from mmrag.commands import ingest, search

COMMANDS: tuple[ModuleType, ...] = (ingest, search)
