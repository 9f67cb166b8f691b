"""mmrag's own OS lock on a Milvus Lite file (retrieval/stores/lite_lock.py), against the real
things: the lock held by other processes (one SIGKILLed), and a real ``mmrag serve`` owning a
file while real CLI processes are refused in sequence and at once (some SIGKILLed mid-way).

The refusals that matter are those after the first: Milvus Lite 2.5.1 alone lets the second
command in (a refused Server unlinks its ``.<db>.lock``). Which processes have the ``.db`` open
is read with psutil, independently of how mmrag finds Milvus Lite servers.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from mmrag.cli import main
from retrieval.stores import lite_lock, open_store
from retrieval.stores.lite_lock import LiteFileBusyError, lock_path, process_command
from retrieval.stores.owner_file import owner_path
from tests.support.images import write_image_files

REPO = Path(__file__).resolve().parents[2]
HOLDER = (
    "import sys, time\n"
    "from pathlib import Path\n"
    "from retrieval.stores import lite_lock\n"
    "lite_lock.hold(Path(sys.argv[1]))\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


def _start_holder(db: Path) -> subprocess.Popen[str]:
    """Another process holding the lock on db (until killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_lite_server_the_users_own_pymilvus_started_is_shared_not_a_leftover(
    tmp_path: Path, private_lite_home: Path
) -> None:
    """The notebooks' pattern: pymilvus opens the file first, then mmrag opens a store on it in
    the same process; mmrag shares that Lite server and leaves it running when its store closes."""
    from pymilvus import MilvusClient

    db = tmp_path / "notebook.db"
    client = MilvusClient(str(db))
    try:
        client.create_collection("user_coll", dimension=8)
        with open_store(str(db), "mmrag") as store:
            store.ensure_collection(8, "a-model")
            assert sorted(store.list_collections()) == ["mmrag", "user_coll"]
        assert sorted(client.list_collections()) == ["mmrag", "user_coll"]  # still served
        with open_store(str(db), "mmrag") as again:
            assert again.count() == 0
    finally:
        client.close()


def test_lock_is_shared_in_process_and_refused_to_others(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    lite_lock.hold(db)
    lite_lock.hold(db)  # a second store of this process shares it
    lite_lock.release(db)
    assert lite_lock.holds(db)
    holder = subprocess.run(
        [sys.executable, "-c", HOLDER.replace("time.sleep(600)", ""), str(db)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert holder.returncode != 0
    assert f"(pid {os.getpid()}) owns the Milvus Lite file {db.resolve()}" in holder.stderr
    lite_lock.release(db)
    assert not lite_lock.holds(db)
    assert lock_path(db).read_text() == ""  # the released lock names no owner
    assert lock_path(db).exists()  # never deleted: every process locks the same inode


def test_a_killed_owner_never_blocks_the_next_process(tmp_path: Path) -> None:
    db = tmp_path / "owned.db"
    holder = _start_holder(db)
    try:
        with pytest.raises(LiteFileBusyError) as refused:
            lite_lock.hold(db)
        assert refused.value.owner.pid == holder.pid
        assert "stop it and run this command again" in str(refused.value)
        with pytest.raises(LiteFileBusyError):  # refused again: the lock file is untouched
            open_store(str(db), "c")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    lite_lock.hold(db)  # the kernel released the dead owner's lock
    lite_lock.release(db)


def test_a_store_holds_the_lock_until_closed_and_kept_across_a_reopen(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = open_store(str(db), "c")
    try:
        assert lite_lock.holds(db)
        assert lock_path(db).read_text().splitlines() == [str(os.getpid()), process_command()]
        with lite_lock.kept_across(str(db)):
            store.close()
            assert lite_lock.holds(db)  # between the close and the reopen: still ours
            store = open_store(str(db), "c")
    finally:
        store.close()
    assert not lite_lock.holds(db)
    holder = _start_holder(db)  # another process can have the file now
    holder.send_signal(signal.SIGKILL)
    holder.wait(30)


def test_process_command_names_the_mmrag_command() -> None:
    assert process_command(["/venv/bin/mmrag", "serve", "--port", "1"]) == "mmrag serve"
    assert process_command(["/repo/mmrag/__main__.py", "--uri", "a.db", "search", "x"]) == (
        "mmrag search"
    )
    assert process_command(["/venv/bin/mmrag", "--verbose", "ingest", "d"]) == "mmrag ingest"
    assert process_command(["/usr/bin/myscript.py", "arg"]) == "myscript.py"


# ----- a real mmrag serve and refused CLI processes -------------------------------------------


@dataclass
class OpenWatch:
    """Pids of processes seen with a file open, sampled with psutil in a background thread."""

    path: str
    seen: set[int] = field(default_factory=set)
    samples: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            self.seen |= processes_with_open(self.path)
            self.samples += 1
            time.sleep(0.02)


def processes_with_open(path: str) -> set[int]:
    """Pids of processes that have ``path`` open (psutil's view of /proc/*/fd)."""
    pids = set()
    for proc in psutil.process_iter():
        try:
            if any(f.path == path for f in proc.open_files()):
                pids.add(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return pids


@pytest.fixture
def lite_setup(tmp_path: Path, tiny_model_files: tuple[Path, Path]) -> dict[str, object]:
    """A Lite file with 6 ingested images, 4 more to ingest, and the CLI flags for them."""
    config, checkpoint = tiny_model_files
    db = tmp_path / "owned.db"
    flags = ["--uri", str(db), "--collection", "lock", "--model", str(config),
             "--pretrained", "", "--checkpoint", str(checkpoint), "--device", "cpu"]
    first = write_image_files(tmp_path / "first", 6, ext=".png")
    more = write_image_files(tmp_path / "more", 4, ext=".png", start=100)
    assert main(["ingest", str(first[0].parent), "--quiet", *flags]) == 0
    assert not lite_lock.holds(db)  # released when the command closed its store
    return {"db": db.resolve(), "flags": flags, "more": more[0].parent, "tmp": tmp_path}


def _mmrag(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mmrag", *argv], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env=_env())


def _spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mmrag", *argv], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env["MMRAG_LOG_LEVEL"] = "warning"
    return env


@pytest.fixture
def served(lite_setup: dict[str, object]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``mmrag serve`` owning the Lite file, ready on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    flags = list(lite_setup["flags"])  # type: ignore[call-overload]
    log = open(Path(str(lite_setup["tmp"])) / "serve.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port),
         *flags], cwd=REPO, text=True, stdout=log, stderr=subprocess.STDOUT, env=_env(),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    try:
        while True:
            assert proc.poll() is None, Path(log.name).read_text()
            try:
                if httpx.get(base + "/ready", timeout=5, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, Path(log.name).read_text()
            time.sleep(0.2)
        # Without its owner file (#16.2: commands would work through the server), the lock
        # alone must refuse every other process.
        owner_file = owner_path(Path(str(lite_setup["db"])))
        assert owner_file.exists()
        owner_file.unlink()
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
        log.close()


def _count(base: str) -> int:
    response = httpx.get(base + "/stats", timeout=30, trust_env=False)
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


def test_serve_owns_the_file_against_refused_and_killed_commands(
    lite_setup: dict[str, object], served: tuple[subprocess.Popen[str], str]
) -> None:
    proc, base = served
    db = Path(str(lite_setup["db"]))
    flags = list(lite_setup["flags"])  # type: ignore[call-overload]
    more = str(lite_setup["more"])
    owner = f"mmrag serve (pid {proc.pid}) owns the Milvus Lite file {db}"
    lite_child = processes_with_open(str(db))
    assert len(lite_child) == 1 and psutil.Process(lite_child.pop()).ppid() == proc.pid
    watch = OpenWatch(str(db))
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    try:
        for argv in (["search", "x"], ["search", "x"], ["ingest", more]):
            refused = _mmrag(*argv, *flags)  # in sequence: the second search is the old gap
            assert refused.returncode == 2, refused.stdout + refused.stderr
            assert owner in refused.stderr
        at_once = [_spawn(*argv, *flags) for argv in
                   (["ingest", more], ["search", "x"], ["ingest", more], ["stats"])]
        time.sleep(1.0)  # a moment in: some are importing, some opening the store
        for killed in at_once[::2]:
            killed.send_signal(signal.SIGKILL)
        for index, run in enumerate(at_once):
            _, err = run.communicate(timeout=600)
            if index % 2 == 0:
                assert run.returncode in (-signal.SIGKILL, 2)
            else:
                assert run.returncode == 2 and owner in err, err
    finally:
        watch.stop.set()
        watcher.join(30)
    assert watch.samples > 10
    assert len(watch.seen) == 1, f"processes that had {db} open: {sorted(watch.seen)}"
    assert _count(base) == 6  # every acknowledged row, and nothing from the refused ingests

    # serve's own reconnect after its Milvus Lite server died keeps the file: one server again
    old_child = next(iter(watch.seen))
    psutil.Process(old_child).send_signal(signal.SIGKILL)
    deadline = time.monotonic() + 120
    while True:
        response = httpx.get(base + "/stats", timeout=30, trust_env=False)
        if response.status_code == 200:
            break
        assert time.monotonic() < deadline, response.text
        time.sleep(0.5)
    assert response.json()["count"] == 6
    now_open = processes_with_open(str(db))
    assert len(now_open) == 1 and old_child not in now_open
    refused = _mmrag("search", "x", *flags)
    assert refused.returncode == 2 and owner in refused.stderr

    # a SIGKILLed owner never blocks the next command, which writes and sees every row
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    ingest = _mmrag("ingest", more, "--json", *flags)
    assert ingest.returncode == 0, ingest.stderr
    assert '"ingested": 4' in ingest.stdout
    assert not processes_with_open(str(db))
    store = open_store(str(db), "lock")
    try:
        assert store.count() == 10
    finally:
        store.close()
