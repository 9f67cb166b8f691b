"""One owner, many clients (#16.2): a real ``mmrag serve`` owns a Milvus Lite file and real CLI
processes on the same file work through it, with the output and exit codes they have on a copy
of the file opened without a server; the rows they write are the server's at once.

Also: the owner file (0600, removed on a clean stop, a SIGKILLed server's leftover ignored), the
hidden routes' token (a wrong one, or an API key, is refused), and the contract's calls through
an ``OwnerStore`` in this process.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from mmrag.cli import main
from retrieval.errors import CollectionNotFoundError, ModelMismatchError
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.stores.owner import OwnerStore
from retrieval.stores.owner_calls import CALLS
from retrieval.stores.owner_file import owner_path
from retrieval.stores.owner_wire import PREFIX, TOKEN_HEADER
from retrieval.types import Record
from tests.support.images import write_image_files

REPO = Path(__file__).resolve().parents[2]
API_KEY = "owner-test-key"


@dataclass
class Served:
    """A running ``mmrag serve`` on a Lite file, and a copy of the file made before it started."""

    proc: subprocess.Popen[str]
    base: str
    db: Path
    copy: Path
    flags: list[str]
    more: Path
    log: Path

    def cli_flags(self, db: Path) -> list[str]:
        return ["--uri", str(db), *self.flags]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(MMRAG_LOG_LEVEL="warning", COLUMNS="100", **extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
) -> Iterator[Served]:
    """``mmrag serve`` (with an API key) started on a missing owned.db; then 6 images ingested by
    this process, which creates the file, and into a copy; the server owns the file after."""
    config, checkpoint = tiny_model_files
    tmp = tmp_path_factory.mktemp("owner")
    db = (tmp / "served" / "owned.db").resolve()
    copy = tmp / "copy00" / "owned.db"  # as long as the served path: tables pad alike
    flags = ["--collection", "photos", "--model", str(config), "--pretrained", "",
             "--checkpoint", str(checkpoint), "--device", "cpu"]
    first = write_image_files(tmp / "first", 6, ext=".png")
    more = write_image_files(tmp / "more", 4, ext=".png", start=100)[0].parent
    port = _free_port()
    log = tmp / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--uri", str(db), *flags],
            cwd=REPO, text=True, stdout=out, stderr=subprocess.STDOUT,
            env=_env(MMRAG_API_KEY=API_KEY),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for target in (db, copy):  # the server waits for the file, then takes it
            assert main(["ingest", str(first[0].parent), "--quiet", "--uri", str(target),
                         *flags]) == 0
        deadline = time.monotonic() + 180
        while not owner_path(db).exists():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield Served(proc, base, db, copy, flags, more, log)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)


def _spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "mmrag", *argv], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _same_shape(text: str, db: Path) -> str:
    """Output with the database path and timings made comparable."""
    text = text.replace(str(db), "DB")
    text = re.sub(r"in \d+\.\ds \([\d.]+ items/s\)", "in Ts", text)
    return re.sub(r"\d+:\d\d:\d\d", "T", text)


def _no_native_log(text: str) -> str:
    """Stderr without the lines Milvus Lite's own process writes (a process that opens the file
    prints them; through the server they are in the server's log)."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if not re.match(r"\[\d{4}-\d\d-\d\dT[\d:]+Z \w+ +tantivy", line))


def _keyed(served: Served) -> dict[str, str]:
    return {"X-API-Key": API_KEY}


def _in_process(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """An mmrag command run by this process (not the owner, so it works through the server
    when the file is served); its exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_commands_work_through_the_owning_server(
    served: Served, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # as the CLI processes get it
    path = owner_path(served.db)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    published = json.loads(path.read_text())
    assert published["pid"] == served.proc.pid and published["db"] == str(served.db)
    assert published["url"] == served.base

    # real CLI processes on the served file
    ingested = _finish(_spawn("ingest", str(served.more), *served.cli_flags(served.db)))
    assert ingested[0] == 0, ingested
    # the server has the new rows at once: its count and search see them
    stats = httpx.get(served.base + "/stats", headers=_keyed(served), timeout=30, trust_env=False)
    assert stats.status_code == 200, stats.text
    assert stats.json()["count"] == 10
    found = httpx.post(served.base + "/search", json={"query": "x", "k": 10},
                       headers=_keyed(served), timeout=60, trust_env=False)
    assert found.status_code == 200, found.text
    assert {str(p) for p in served.more.iterdir()} <= {h["source"] for h in found.json()["hits"]}
    searched = _finish(_spawn("search", "x", *served.cli_flags(served.db)))
    assert served.proc.poll() is None  # no command stopped the server or took the file

    # the same commands on the copy, which this process opens itself (no server)
    for argv, (code, out, err) in ((["ingest", str(served.more)], ingested),
                                   (["search", "x"], searched)):
        alone = _in_process(capsys, *argv, *served.cli_flags(served.copy))
        assert code == alone[0] == 0, (argv, err)
        assert _same_shape(out, served.db) == _same_shape(alone[1], served.copy), argv
        assert _same_shape(_no_native_log(err), served.db) == _same_shape(alone[2], served.copy)
    assert "4 ingested" in ingested[1] or "ingested 4" in ingested[1]

    # more commands, run in this process through the server, and on the copy
    one = '{"name": "img_0100.png"}'
    queries = served.more.parent / "queries.jsonl"
    relevant = [found.json()["hits"][0]["id"]]
    queries.write_text(json.dumps({"query": "x", "relevant": relevant}) + "\n")
    for argv, extra in ((["ask", "what is here"], []), (["eval", str(queries), "--json"], []),
                        (["sync", str(served.more), "--dry-run"], []),
                        (["delete", "--filter", one, "--yes"], []), (["stats"], []),
                        (["search", "x"], ["--collection", "nope"])):
        through = _in_process(capsys, *argv, *served.cli_flags(served.db), *extra)
        alone = _in_process(capsys, *argv, *served.cli_flags(served.copy), *extra)
        assert through[0] == alone[0], (argv, through, alone)
        assert _same_shape(through[1], served.db) == _same_shape(alone[1], served.copy), argv
        assert _same_shape(through[2], served.db) == _same_shape(alone[2], served.copy), argv
    assert through[0] == 2 and "collections there: photos" in through[2]


def test_the_contract_through_an_owner_store(served: Served) -> None:
    """This process is not the owner: open_store gives an OwnerStore that runs each call on the
    server, with the store's own errors."""
    with open_store(str(served.db), "contract") as store:
        assert isinstance(store, OwnerStore)
        assert store.where == str(served.db)
        assert store.capabilities.shared_writers and store.capabilities.embedded
        assert not store.exists()
        store.ensure_collection(4, "m4", spec={"model": "m4"})
        vectors = np.eye(4, dtype=np.float32)
        records = [Record(id=f"r{i}", vector=vectors[i], source=f"s{i}", caption=f"c{i}",
                          metadata={"n": i, "tag": "odd" if i % 2 else "even"})
                   for i in range(4)]
        assert store.add(records[:2]) == 2
        assert store.upsert(records) == 4
        store.flush()
        assert store.count() == 4 and store.existing_ids(["r1", "zz"]) == {"r1"}
        hits = store.search(vectors[2:3], k=2, with_vectors=True)
        assert hits[0][0].id == "r2" and hits[0][0].score == pytest.approx(1.0)
        assert hits[0][0].vector is not None and hits[0][0].metadata["tag"] == "even"
        assert [r.id for r in store.get(["r3", "r0", "nope", "r3"])] == ["r3", "r0"]
        many = store.search(np.tile(vectors, (75, 1)), k=1)  # sent in several calls
        assert [hits[0].id for hits in many] == ["r0", "r1", "r2", "r3"] * 75
        with pytest.raises(ModelMismatchError, match="query vectors have shape"):
            store.search(np.ones((1, 5), dtype=np.float32))
        assert store.capabilities.full_text and store.has_text_index()  # Lite has BM25
        assert [h.id for h in store.keyword_search(["c2"], k=2)[0]] == ["r2"]
        assert store.hybrid_search(vectors[1:2], ["c1"], k=1)[0][0].id == "r1"
        assert [h.id for h in store.range_search(vectors[3:4], 0.5)[0]] == ["r3"]
        assert [r.id for batch in store.iterate(3) for r in batch] == ["r0", "r1", "r2", "r3"]
        odd = [r.id for b in store.iterate_where('metadata["tag"] == "odd"') for r in b]
        assert odd == ["r1", "r3"]
        assert store.delete_where('metadata["tag"] == "odd"') == 2
        store.delete(["r0"])
        assert store.count() == 1
        assert store.info().count == 1 and store.model_spec() == {"model": "m4"}
        assert store.resolve() == "contract" == store.describe_target().collection
        store.set_alias("contract_live")
        assert store.describe_alias("contract_live") == "contract"
        assert store.list_aliases() == ["contract_live"]
        assert store.drop_alias("contract_live") and store.describe_alias("contract_live") is None
        with pytest.raises(ModelMismatchError, match="refusing model"):
            store.ensure_collection(8, "other")
        assert "contract" in store.list_collections()
        store.drop()
        assert not store.exists()
    with pytest.raises(CollectionNotFoundError, match="collections there"):
        from retrieval.stores.existing import open_existing_store

        open_existing_store(str(served.db), "missing")


def test_every_contract_method_is_forwarded() -> None:
    """A method added to VectorStore without an OwnerStore override (and a server-side call)
    fails here."""
    public = {name for name, _ in inspect.getmembers(VectorStore) if not name.startswith("_")}
    public -= {"collection", "where"}
    missing = sorted(name for name in public if name not in OwnerStore.__dict__)
    assert not missing, f"OwnerStore does not forward {missing}"
    streamed = {"iterate", "iterate_where", "close"}  # the stream route and session close
    assert sorted(public - streamed - set(CALLS)) == []


def test_two_writers_through_the_owner_count_exactly(
    served: Served, tiny_model_files: tuple[Path, Path]
) -> None:
    """Lite writes checked-new rows with a plain insert; with writers in several processes the
    ingest's write guard re-checks ids under one lock, keyed as the server keys its own."""
    from ingest.job import IngestOptions, run_ingest
    from ingest.sources import SourceItem
    from ingest.write_lock import WriteGuard, lock_path
    from retrieval.components import build_components
    from retrieval.config import Settings

    config, checkpoint = tiny_model_files
    settings = Settings(uri=str(served.db), collection="photos", model=str(config),
                        checkpoint=checkpoint, pretrained=None, device="cpu", batch_size=2)
    images = write_image_files(served.db.parent.parent / "both", 5, ext=".png", start=200)
    writers = [build_components(settings) for _ in range(2)]
    try:
        store = writers[0].store
        assert isinstance(store, OwnerStore)
        before = store.count()
        guard = WriteGuard.for_store(store)
        assert guard.path == lock_path(str(served.db), "photos")  # the server's own key
        guard.close()
        with ThreadPoolExecutor(2) as pool:
            summaries = list(pool.map(
                lambda c: run_ingest(c, [SourceItem(source=str(p)) for p in images],
                                     IngestOptions(batch_size=2)),
                writers,
            ))
        assert sum(s.ingested for s in summaries) == 5
        assert store.count() == before + 5
    finally:
        for components in writers:
            components.close()


def test_owner_routes_need_the_owner_token_not_the_api_key(served: Served) -> None:
    token = json.loads(owner_path(served.db).read_text())["token"]
    url = served.base + PREFIX + "/ping"
    for headers in ({}, {TOKEN_HEADER: "wrong"}, {"X-API-Key": API_KEY},
                    {"Authorization": f"Bearer {API_KEY}", TOKEN_HEADER: token[:-1]}):
        refused = httpx.post(url, json={}, headers=headers, timeout=30, trust_env=False)
        assert refused.status_code == 403, (headers, refused.text)
    ok = httpx.post(url, json={}, headers={TOKEN_HEADER: token}, timeout=30, trust_env=False)
    assert ok.status_code == 200 and ok.json()["db"] == str(served.db)
    schema = httpx.get(served.base + "/openapi.json", timeout=30, trust_env=False)
    assert schema.status_code == 200, schema.text
    assert not [path for path in schema.json()["paths"] if path.startswith(PREFIX)]
    denied = httpx.get(served.base + "/stats", timeout=30, trust_env=False)
    assert denied.status_code == 401  # the API key still guards the API itself


def test_a_killed_server_leaves_an_owner_file_that_blocks_nothing(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    served.proc.send_signal(signal.SIGKILL)
    served.proc.wait(30)
    assert owner_path(served.db).exists()  # the stale leftover
    capsys.readouterr()
    assert main(["stats", "--uri", str(served.db), *served.flags]) == 0
    assert re.match(r"photos: \d+ items\n", capsys.readouterr().out)
