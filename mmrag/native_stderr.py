"""Native libraries' noise on file descriptor 2 (libpng's warnings) filtered out of the CLI.

OpenCV decodes PNGs with libpng and installs no warning handler, so libpng prints
``libpng warning: iCCP: known incorrect sRGB profile`` (and the like) with ``fprintf(stderr)``
for harmless ancillary chunks; OpenCV's log level does not reach it. (The most common one, a
bad ``iCCP`` colour profile, never reaches libpng: ``retrieval.png_chunks`` drops the chunk
before decoding, in the API too; this filter is for the rest.) Redirecting fd 2 around
each decode call would race with the decode threads, so the CLI instead points fd 2 at a pipe
for the whole run: a small forwarder *process* drops the filtered lines and passes everything
else on unchanged. Python's own ``sys.stderr`` is moved to a copy of the real stderr, so rich
still sees a terminal and Python output is not delayed. A process rather than a thread so that
what a crashing process writes last (an abort message) is still forwarded; it ends when the
last holder of the pipe (the CLI and any child process) exits.

Run as a script, this module is that forwarder (``python -I -S native_stderr.py``: the standard
library only, a few milliseconds to start; it ignores Ctrl-C and ends at end of file).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator

# Lines of native-library chatter dropped unless -v/--verbose (or MMRAG_LOG_LEVEL) asks for it.
FILTERED_PREFIXES = (b"libpng warning: ",)
# Milvus Lite 2.5's full-text index (tantivy, in the Lite process that shares fd 2) logs every
# commit at INFO: "[2026-01-01T00:00:00Z INFO  tantivy::indexer::index_writer] Preparing commit".
_TANTIVY_INFO = re.compile(rb"\[[0-9T:.Z-]+ INFO  tantivy::")
FORWARDER_EXIT_WAIT_S = 5.0
_CHUNK = 65536


def forward(source: int, sink: int, prefixes: tuple[bytes, ...] = FILTERED_PREFIXES) -> None:
    """Copy ``source`` to ``sink`` until end of file, minus the lines starting with a prefix."""
    pending = b""
    while True:
        chunk = os.read(source, _CHUNK)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        kept = [line + b"\n" for line in lines if not _filtered(line, prefixes)]
        could_be_filtered = pending.startswith(b"[") or any(
            p.startswith(pending[: len(p)]) for p in prefixes
        )
        if pending and not could_be_filtered:
            kept.append(pending)  # a partial line that cannot become a filtered one: show it now
            pending = b""
        _write_all(sink, b"".join(kept))
    if pending and not _filtered(pending, prefixes):
        _write_all(sink, pending)


def _filtered(line: bytes, prefixes: tuple[bytes, ...]) -> bool:
    """Whether a line is native chatter to drop."""
    return line.startswith(prefixes) or _TANTIVY_INFO.match(line) is not None


def _write_all(sink: int, data: bytes) -> None:
    """Write every byte of ``data`` (os.write may write less)."""
    view = memoryview(data)
    while view:
        view = view[os.write(sink, view):]


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """For the duration, native writes to fd 2 pass the filter; Python's stderr is unchanged."""
    sys.stderr.flush()
    terminal = os.dup(2)
    read_end, write_end = os.pipe()
    forwarder = subprocess.Popen(
        [sys.executable, "-I", "-S", os.path.abspath(__file__)],
        stdin=read_end, stdout=terminal, stderr=terminal, close_fds=True,
    )
    os.close(read_end)
    python_stderr = sys.stderr
    sys.stderr = io.TextIOWrapper(
        io.FileIO(os.dup(terminal), "w"), encoding=python_stderr.encoding,
        errors="backslashreplace", line_buffering=True,
    )
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()  # left open: a logging handler may still hold it (same terminal)
        sys.stderr = python_stderr
        os.dup2(terminal, 2)  # this process's end of the pipe closes here
        os.close(terminal)
        # it ends once the children holding fd 2 exit too; one still running keeps it alive
        with contextlib.suppress(subprocess.TimeoutExpired):
            forwarder.wait(FORWARDER_EXIT_WAIT_S)


if __name__ == "__main__":
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group
    try:
        forward(0, 1)
    except (BrokenPipeError, KeyboardInterrupt):
        sys.exit(0)
