"""An instant CLI: parsing (--help, every command's --help, a typo) imports no heavy library."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mmrag.cli import build_parser
from mmrag.commands import COMMANDS, ask

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "open_clip", "pymilvus", "pandas", "milvus_lite", "fastapi", "uvicorn", "cv2")

PROBE = """
import contextlib, io, json, sys
from mmrag.cli import build_parser
names = [a for a in build_parser()._subparsers._group_actions[0].choices]
for argv in [["--help"], ["serch"], *([name, "--help"] for name in names)]:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            build_parser().parse_args(argv)
        except SystemExit:
            pass
print(json.dumps({"commands": names, "modules": sorted(sys.modules)}))
"""


def test_parsing_every_help_and_a_typo_imports_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout)
    assert len(report["commands"]) == len(COMMANDS) >= 12
    loaded = {name.split(".")[0] for name in report["modules"]}
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))


def test_a_typo_names_the_closest_command_and_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mmrag", "serch", "a cat"], cwd=REPO, capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "unknown command 'serch'. Did you mean 'search'" in done.stderr
    assert "Run 'mmrag --help' to list the commands." in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_command_without_a_close_name_lists_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["xyzzy"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unknown command 'xyzzy'. Run 'mmrag --help'" in err and "Did you mean" not in err


def test_serve_help_lists_every_route_group(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    out = capsys.readouterr().out
    for route in ("POST /search", "POST /search/image", "GET /items/{id}", "POST /chat",
                  "/v1/chat/completions", "/v1/completions", "/v1/models", "GET / (web UI",
                  "GET /collections", "GET /stats", "GET /fields", "GET /health", "GET /ready",
                  "GET /metrics", "GET /docs"):
        assert route in out, route


def test_verbose_is_accepted_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["-v", "search", "x"]).verbose is True
    assert parser.parse_args(["search", "x", "-v"]).verbose is True
    assert parser.parse_args(["search", "x"]).verbose is False


def test_the_cli_copies_of_library_constants_match() -> None:
    from retrieval.answerers import BACKENDS
    from retrieval.rag import DEFAULT_K

    assert ask.BACKENDS == BACKENDS and ask.DEFAULT_K == DEFAULT_K


def test_verbosity_quiet_by_default_and_chatty_when_asked() -> None:
    from mmrag.logs import Verbosity

    assert Verbosity.chosen(None, verbose=False) == Verbosity("warning", "info", libraries=False)
    assert Verbosity.chosen(None, verbose=True) == Verbosity("info", "info", libraries=True)
    assert Verbosity.chosen("info", verbose=False).libraries
    assert Verbosity.chosen("debug", verbose=True).level == "debug"
    assert not Verbosity.chosen("error", verbose=False).libraries


def test_log_level_setting_reads_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    from retrieval.config import Settings

    monkeypatch.setenv("MMRAG_LOG_LEVEL", "INFO")
    assert Settings().log_level == "info"
    monkeypatch.setenv("MMRAG_LOG_LEVEL", "")
    assert Settings().log_level is None
