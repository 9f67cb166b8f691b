"""Subcommands: each module has add_parser(subparsers, common) and a run(args, settings)."""

from types import ModuleType

from mmrag.commands import ask, ingest, search, serve

COMMANDS: tuple[ModuleType, ...] = (ingest, search, serve, ask)
