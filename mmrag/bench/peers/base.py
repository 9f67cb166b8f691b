"""A peer's command, how it is run, and the one result line every child prints."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULT_PREFIX = "MMRAG-PEER-RESULT "
TAIL_CHARS = 1500  # of a failed child's stderr, in the message


class PeerFailed(Exception):
    """A peer ran but gave no result (its message says why and what to look at)."""


@dataclass(frozen=True)
class Counted:
    """What a child reported: images written and the seconds that took, model loaded."""

    images: int
    run_s: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Peer:
    """One tool's run: its command line, environment, and how its output is read."""

    name: str
    command: list[str]
    env: dict[str, str]
    parse: Callable[[str], Counted]
    counts: str  # what its images/s counts, in words ("rows flushed to Milvus Lite")
    cwd: Path | None = None


@dataclass
class PeerResult:
    """One tool's figures, or why it was skipped."""

    name: str
    counts: str
    images: int = 0
    run_s: float = 0.0
    wall_s: float = 0.0
    skipped: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def images_per_s(self) -> float | None:
        return self.images / self.run_s if self.run_s > 0 and not self.skipped else None

    @property
    def wall_images_per_s(self) -> float | None:
        return self.images / self.wall_s if self.wall_s > 0 and not self.skipped else None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "images_per_s": self.images_per_s,
                "wall_images_per_s": self.wall_images_per_s}


def result_line(images: int, run_s: float, **extra: Any) -> str:
    """The line a child prints last: its images and run seconds as JSON after the prefix."""
    return RESULT_PREFIX + json.dumps({"images": images, "run_s": run_s, **extra})


def parse_result_line(stdout: str) -> Counted:
    """The last result line of a child's stdout."""
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX):])
            images, run_s = int(data.pop("images")), float(data.pop("run_s"))
            return Counted(images, run_s, data)
    raise PeerFailed("the child printed no result line")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without the MMRAG_* settings a child must not inherit, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items()
        if not k.startswith("MMRAG_") or k == "MMRAG_BENCH_CACHE"
    }
    return {**env, **extra}


def run_peer(peer: Peer, timeout_s: float) -> PeerResult:
    """Run the peer's command to its end; its result, or a PeerFailed saying why."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            peer.command, env=peer.env, cwd=peer.cwd, capture_output=True, text=True,
            timeout=timeout_s, check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise PeerFailed(f"{peer.name} did not finish within {timeout_s:g} s") from exc
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise PeerFailed(
            f"{peer.name} exited with status {done.returncode}: "
            f"{(done.stderr or done.stdout)[-TAIL_CHARS:].strip()}"
        )
    try:
        counted = peer.parse(done.stdout)
    except (PeerFailed, ValueError, KeyError) as exc:
        raise PeerFailed(
            f"{peer.name} gave no result ({exc}); its stderr ends: "
            f"{done.stderr[-TAIL_CHARS:].strip()}"
        ) from exc
    return PeerResult(peer.name, peer.counts, counted.images, counted.run_s, wall,
                      extra=counted.extra)
