"""clip-retrieval 2.45.0 as a peer: a venv of its own (its pins clash with mmrag's), then its
``clip_inference`` over the folder (``clip_retrieval_child.py``), embeddings written to files.

The venv lives in the bench's cache dir and is made once: ``python -m venv`` and ``pip install
clip-retrieval==2.45.0`` with mmrag's own torch and torchvision versions pinned, so pip takes
the wheels this machine already has instead of downloading other ones, and ``setuptools<81``
(clip-anytorch imports ``pkg_resources``). A venv that cannot be made (no registry, no disk) is
a ``PeerUnavailable`` with pip's last words, and the bench skips the peer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

from mmrag.bench.peers.base import Peer, child_env, parse_result_line

VERSION = "2.45.0"
CHILD = Path(__file__).with_name("clip_retrieval_child.py")
READY = ".mmrag-ready"  # written once pip finished: a half-made venv is made again
INSTALL_TIMEOUT_S = 1800.0
TAIL_CHARS = 800


class PeerUnavailable(Exception):
    """The peer cannot be installed or found here; the message says why and what to do."""


def requirements() -> list[str]:
    """clip-retrieval, and mmrag's torch and torchvision versions (the wheels already here)."""
    pins = [f"clip-retrieval=={VERSION}", "setuptools<81"]
    for name in ("torch", "torchvision"):
        pins.append(f"{name}=={version(name).split('+')[0]}")
    return pins


def venv_dir(cache: Path) -> Path:
    return cache / "peers" / f"clip-retrieval-{VERSION}"


def venv_python(cache: Path) -> Path:
    return venv_dir(cache) / "bin" / "python"


def install_commands(cache: Path) -> list[list[str]]:
    """The commands that make the venv: venv, then one pip install of every requirement."""
    root = venv_dir(cache)
    return [
        [sys.executable, "-m", "venv", str(root)],
        [str(root / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         *requirements()],
    ]


def ensure_venv(cache: Path, log: object = print) -> Path:
    """The venv's python, making the venv first when it is not ready (minutes, once)."""
    python = venv_python(cache)
    stamp = venv_dir(cache) / READY
    wanted = " ".join(requirements())
    if stamp.is_file() and stamp.read_text().strip() == wanted and python.is_file():
        return python
    if callable(log):
        log(f"peers: installing {wanted} into {venv_dir(cache)} (once; a few minutes)")
    for command in install_commands(cache):
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PeerUnavailable(
                f"clip-retrieval {VERSION} could not be installed ({exc}); check that the "
                "package registry is reachable, or run the bench without it."
            ) from exc
        if done.returncode != 0:
            tail = "\n".join(line for line in (done.stderr or done.stdout).splitlines()
                             if not line.startswith("WARNING: Location"))[-TAIL_CHARS:]
            raise PeerUnavailable(
                f"clip-retrieval {VERSION} could not be installed: `{' '.join(command)}` "
                f"exited with status {done.returncode}: {tail.strip()}. Check that the package "
                "registry is reachable (pip's own settings apply), or run the bench without it."
            )
    stamp.write_text(wanted + "\n")
    return python


def clip_retrieval_peer(
    python: Path, folder: Path, out: Path, model: str, checkpoint: Path, batch_size: int,
    workers: int, settings_env: dict[str, str],
) -> Peer:
    """``clip_retrieval_child.py`` with the venv's python: clip_inference over the folder."""
    # -I: isolated, so neither this folder (its clip_retrieval.py) nor PYTHONPATH shadows theirs
    command = [str(python), "-I", str(CHILD), str(folder), str(out), model,
               str(checkpoint.resolve()), str(batch_size), str(workers)]
    env = child_env(settings_env)
    return Peer(f"clip-retrieval {VERSION} inference", command, env, parse_result_line,
                "embeddings written to .npy files (model loaded and warmed up before the "
                "clock starts)", cwd=out.parent)


def installed_python(cache: Path) -> Path | None:
    """The venv's python when it is ready, else None (nothing is installed)."""
    ready = (venv_dir(cache) / READY).is_file() and venv_python(cache).is_file()
    return venv_python(cache) if ready and os.access(venv_python(cache), os.X_OK) else None
