"""The CLI's logging: quiet by default, library chatter shown with -v or MMRAG_LOG_LEVEL.

Quiet means: mmrag's own loggers at INFO, every other logger at WARNING (open_clip logs each
model load at INFO on the *root* logger), pkg_resources' deprecation warning (milvus-lite
imports it) hidden, and libpng's warnings filtered from fd 2 (see mmrag.native_stderr).
"""

from __future__ import annotations

import importlib
import logging
import warnings
from dataclasses import dataclass

# Loggers the application keeps quiet: every pymilvus failure is re-raised as a StoreError, so
# its own ERROR tracebacks are noise (shown at MMRAG_LOG_LEVEL=debug). Libraries never set
# this; the application does, here.
QUIET_LOGGERS = {"pymilvus": logging.CRITICAL}
APPLICATION_LOGGERS = ("mmrag", "retrieval", "ingest", "pipelines")
# Python warnings from libraries that a user can do nothing about.
HIDDEN_WARNINGS = (
    (r"pkg_resources is deprecated", UserWarning),
    (r"Deprecated call to `pkg_resources", DeprecationWarning),
)
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"
# Libraries that add a stderr handler of their own when imported and still propagate to the
# root's: each of their lines would print twice (huggingface_hub's retry warnings did).
OWN_HANDLER_LOGGERS = {"huggingface_hub": "huggingface_hub.utils.logging"}


@dataclass(frozen=True)
class Verbosity:
    """How much the CLI shows: the root level, mmrag's own level, and library chatter or not."""

    level: str  # the root logger's level (libraries)
    application_level: str  # mmrag's own loggers
    libraries: bool  # library INFO lines, pkg_resources and libpng warnings shown

    @classmethod
    def chosen(cls, log_level: str | None, *, verbose: bool) -> Verbosity:
        """From MMRAG_LOG_LEVEL (None when unset) and -v/--verbose."""
        if verbose:
            level = "debug" if log_level == "debug" else "info"
            return cls(level, level, libraries=True)
        if log_level is None:
            return cls("warning", "info", libraries=False)
        return cls(log_level, log_level, libraries=log_level in ("debug", "info"))


def configure_logging(verbosity: Verbosity | str) -> None:
    """The application's logging at ``verbosity`` (or one level name for everything)."""
    if isinstance(verbosity, str):
        verbosity = Verbosity.chosen(verbosity, verbose=False)
    logging.basicConfig(level=verbosity.level.upper(), format=LOG_FORMAT)
    for name in APPLICATION_LOGGERS:
        logging.getLogger(name).setLevel(verbosity.application_level.upper())
    single_handler_libraries()
    if not verbosity.libraries:
        hide_library_warnings()
    if verbosity.level != "debug":
        quiet_libraries()


def single_handler_libraries() -> None:
    """Drop the OWN_HANDLER_LOGGERS' own stderr handlers (their module is imported first, as it
    adds them), so the application's handler prints each of their lines once."""
    for name, module in OWN_HANDLER_LOGGERS.items():
        importlib.import_module(module)
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:
                logger.removeHandler(handler)


def hide_library_warnings() -> None:
    """Ignore the HIDDEN_WARNINGS (library deprecations a user can do nothing about)."""
    for message, category in HIDDEN_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


def quiet_libraries() -> None:
    """Set the QUIET_LOGGERS' levels (each library is imported first: pymilvus configures its
    own loggers when it is imported, which would undo an earlier setting)."""
    for name, quiet in QUIET_LOGGERS.items():
        importlib.import_module(name)
        logging.getLogger(name).setLevel(quiet)
