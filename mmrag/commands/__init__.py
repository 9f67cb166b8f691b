"""Subcommands: each module has add_parser(subparsers, common) and a run(args, settings)."""

from types import ModuleType

from mmrag.commands import ask, bench, demo, ingest, migrate, reindex, search, serve
from mmrag.commands import eval as eval_command

COMMANDS: tuple[ModuleType, ...] = (
    ingest, search, serve, ask, demo, eval_command, migrate, reindex, bench
)
