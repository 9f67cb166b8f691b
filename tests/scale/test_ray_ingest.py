"""``mmrag ingest --engine ray`` on a local Ray (2 CPUs) against the embedded Milvus server.

The local Ray stays on loopback: every socket of its processes is on 127.0.0.1.

Both engines ingest the same folder (images, a byte-identical copy, a broken file, a video) into
two collections; ids, counts, summary and rejects must be the same, and a rerun adds nothing.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import time
from pathlib import Path
from typing import Any

import cv2
import psutil
import pytest

from ingest import ray_engine
from mmrag.cli import main as mmrag_main
from retrieval.errors import ConfigError
from retrieval.stores.milvus import MilvusStore
from tests.contract.helpers import EmbeddedServer
from tests.scale.helpers import model_args
from tests.support.images import make_test_image, write_image_files

COMPARED = ("scanned", "ingested", "duplicates", "rejected", "rejected_by_stage")


def _folder(root: Path) -> Path:
    """6 images, a copy of one, a file that is no image, and a 2 s video (2 sampled frames)."""
    images = write_image_files(root, 6)
    shutil.copy(images[0], root / "copy-of-0.jpg")
    (root / "broken.png").write_bytes(b"this is not a png")
    writer = cv2.VideoWriter(str(root / "clip.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10, (80, 64))
    for index in range(20):
        writer.write(cv2.cvtColor(make_test_image(200 + index, 64, 80), cv2.COLOR_RGB2BGR))
    writer.release()
    return root


def _ingest(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    code = mmrag_main(["ingest", *argv, "--json", "--video-every", "1"])
    out = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and out, out
    return dict(json.loads(out[-1]))


def _stored(uri: str, name: str) -> dict[str, tuple[str, str]]:
    with MilvusStore(uri, name) as store:
        return {r.id: (r.source, json.dumps(dict(r.metadata), sort_keys=True))
                for batch in store.iterate(with_vectors=False) for r in batch}


def _rejects(path: Path) -> list[tuple[str, str]]:
    return sorted((json.loads(line)["source"], json.loads(line)["stage"])
                  for line in path.read_text().splitlines())


def _ray_sockets() -> list[tuple[str, str, str, str]]:
    """(process, status, local ip, remote ip) of each socket of the Ray processes started here."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "ray" not in " ".join(proc.cmdline()):
                continue  # e.g. the embedded Milvus server
            for conn in proc.net_connections("inet"):
                remote = conn.raddr.ip if conn.raddr else ""
                found.append((proc.name(), conn.status, conn.laddr.ip, remote))
        except psutil.NoSuchProcess:
            continue
    return found


def _loopback(ip: str) -> bool:
    """Whether an address is loopback (IPv4-mapped ::ffff:127.0.0.1 included); '' is none."""
    if not ip:
        return True
    address = ipaddress.ip_address(ip)
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


@pytest.mark.server
@pytest.mark.slow
def test_ray_engine_matches_the_local_job(
    tmp_path: Path, milvus_server: EmbeddedServer, tiny_model_files: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ray_engine.LOCAL_ONLY_ENV, "0")  # read when ray is imported
    ray = pytest.importorskip("ray", reason="Ray is the optional extra mmrag[ray]")
    pytest.importorskip("ray.data")
    folder = _folder(tmp_path / "data")
    suffix = time.monotonic_ns()
    local, distributed = f"local_{suffix}", f"ray_{suffix}"
    common = ["--uri", milvus_server.uri, *model_args(*tiny_model_files)]
    try:
        mine = _ingest(capsys, str(folder), *common, "--collection", local,
                       "--rejects", str(tmp_path / "local.jsonl"))
        # The engine's own local start, as `mmrag ingest --engine ray` does it, here in the
        # test's process so its Ray stays up for the rerun. A Ray address in the environment
        # (or a `ray start` cluster on this machine) must not be joined: a Ray of its own.
        monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
        assert ray_engine.connect_ray(ray, ray_engine.RayOptions(num_cpus=2))
        assert len(ray.nodes()) == 1
        started = time.monotonic()
        theirs = _ingest(capsys, str(folder), *common, "--collection", distributed,
                         "--engine", "ray", "--rejects", str(tmp_path / "ray.jsonl"))
        took = time.monotonic() - started
        sockets = _ray_sockets()
        assert any(status == psutil.CONN_LISTEN for _, status, _, _ in sockets), sockets
        assert [s for s in sockets if not (_loopback(s[2]) and _loopback(s[3]))] == []
        again = _ingest(capsys, str(folder), *common, "--collection", distributed,
                        "--engine", "ray", "--rejects", str(tmp_path / "ray2.jsonl"))
        print(f"\nray ingest of {theirs['scanned']} works in {took:.1f}s: {theirs}")
        assert {k: mine[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
        assert (theirs["ingested"], theirs["duplicates"], theirs["rejected"]) == (8, 1, 1)
        assert _stored(milvus_server.uri, local) == _stored(milvus_server.uri, distributed)
        assert _rejects(tmp_path / "local.jsonl") == _rejects(tmp_path / "ray.jsonl") == [
            (str(folder / "broken.png"), "decode")
        ]
        assert (again["ingested"], again["duplicates"], again["rejected"]) == (0, 9, 1)
        with MilvusStore(milvus_server.uri, distributed) as store:
            assert store.model_spec() is not None  # the Ray engine records the model spec
            assert store.count() == 8
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for name in (local, distributed):
            with MilvusStore(milvus_server.uri, name) as store:
                store.drop()


def test_ray_engine_refuses_milvus_lite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_image_files(tmp_path / "data", 1)
    rejects = tmp_path / "rejects.jsonl"
    rejects.write_text("kept\n")
    code = mmrag_main(["ingest", str(tmp_path / "data"), "--uri", str(tmp_path / "x.db"),
                       "--engine", "ray", "--rejects", str(rejects)])
    assert code == 2
    assert "Milvus server" in capsys.readouterr().err
    assert rejects.read_text() == "kept\n"


def test_missing_ray_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from ingest import ray_engine

    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"pip install 'mmrag\[ray\]'"):
        ray_engine.import_ray()
