"""mmrag's Milvus Lite servers keep their scratch folder to themselves (stores/lite_server.py).

Milvus Lite 2.5.1 deletes and recreates ``$HOME/.cache/milvus`` in every process, so processes
starting at the same time broke each other ("Mmap manager has not been init"; two test workers
hit it). The race is made deterministic here by a ``HOME`` whose ``.cache`` cannot hold that
folder: a plain Lite server fails there, mmrag's works, and the user's own folder is left alone.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import psutil
import pytest
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from retrieval.stores import open_store
from tests.contract.helpers import DIM, make_records


@pytest.fixture
def blocked_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A HOME where ``.cache`` is a file, so Lite cannot create ``.cache/milvus`` there."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".cache").write_text("not a folder\n")
    monkeypatch.setenv("HOME", str(home))
    return home


def test_plain_lite_fails_where_the_shared_folder_cannot_be_made(
    blocked_home: Path, tmp_path: Path
) -> None:
    """The condition the other tests rely on is real: milvus_lite alone cannot create here."""
    client = MilvusClient(str(tmp_path / "plain.db"))
    try:
        with pytest.raises(MilvusException, match="Mmap manager has not been init"):
            client.create_collection("c", dimension=DIM)
    finally:
        client.close()


def test_store_works_without_the_shared_folder(blocked_home: Path, tmp_path: Path) -> None:
    records = make_records(6)
    with open_store(str(tmp_path / "own.db"), "c") as store:
        store.ensure_collection(DIM, "m")
        assert store.add(records) == 6
        store.flush()
        hits = store.search(records[2].vector[None, :], k=1)
    assert hits[0][0].id == records[2].id


def test_store_leaves_the_users_folder_and_cleans_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    keep = home / ".cache" / "milvus" / "keep.txt"
    keep.parent.mkdir(parents=True)
    keep.write_text("the user's\n")
    monkeypatch.setenv("HOME", str(home))
    db = tmp_path / "own.db"
    with open_store(str(db), "c") as store:
        store.ensure_collection(DIM, "m")
        (lite,) = [c for c in psutil.Process().children() if c.cmdline()[1:2] == [str(db)]]
        scratch = Path(lite.environ()["HOME"])  # what the Lite process really got
        assert scratch.parent == Path(tempfile.gettempdir()) and scratch != home
        assert list(scratch.glob("milvus.*.log.INFO.*"))  # its glog file, not one in /tmp
    assert keep.read_text() == "the user's\n"  # plain Lite deletes the whole folder
    assert not scratch.exists()


def test_a_start_error_says_what_became_of_the_lite_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Lite process that exited is named with its exit code (a real process that exited 3)."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from milvus_lite.server_manager import server_manager_instance

    from retrieval.stores.lite_server import lite_process_state

    db = tmp_path / "gone.db"
    assert lite_process_state(db) == ""  # none started here
    exited = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    exited.wait()
    monkeypatch.setitem(server_manager_instance._servers, str(db.resolve()),
                        SimpleNamespace(_p=exited))
    assert lite_process_state(db) == f"its process (pid {exited.pid}) exited with code 3"
