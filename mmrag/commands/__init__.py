"""Subcommands: each module has add_parser(subparsers, common) and a run(args, settings).

A command module imports only light modules at its top (argparse, mmrag.console, retrieval's
errors and limits); models, stores, web and rich libraries are imported inside ``run``.
"""

from types import ModuleType

from mmrag.commands import (
    ask,
    bench,
    collections,
    delete,
    demo,
    duplicates,
    ingest,
    migrate,
    models,
    reindex,
    search,
    serve,
    stats,
    sync,
    watch,
)
from mmrag.commands import eval as eval_command

COMMANDS: tuple[ModuleType, ...] = (
    ingest, search, ask, serve, collections, stats, models, demo, eval_command, migrate,
    reindex, bench, duplicates, delete, sync, watch,
)
