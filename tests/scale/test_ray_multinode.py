"""A real two-node Ray cluster on loopback, and ``mmrag ingest --engine ray --address`` on it.

A head node and a worker node are started as separate ``ray start --block`` processes with one
CPU each, both on 127.0.0.1 (every socket of every Ray process is checked), in a temp dir of
their own, with a token of their own (``RAY_AUTH_MODE=token``); the ingest is a real CLI
process. Ray 2.60's ``ray start`` of a worker node replaces a loopback address (``--address``
and ``--node-ip-address``) by the machine's own (``services.resolve_ip_for_localhost``) and
refuses to start one under the local-only switch the head and the driver use, so the worker's
``ray start`` runs through a launcher that keeps the addresses given.

The stages' actors need 1.75 CPUs, so they spread over both nodes, and the summary's ``nodes``
(the node id each work was prepared, embedded and written on) must name both. The result must
equal the local job's: ids, sources, fields, counts, rejects. Both nodes are stopped by PID
(``ray stop`` would stop other tests' Rays).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ingest import ray_engine
from mmrag.cli import main as mmrag_main
from retrieval.stores.milvus import MilvusStore
from tests.contract.helpers import EmbeddedServer
from tests.scale.helpers import model_args
from tests.scale.test_ray_ingest import COMPARED, _loopback, _rejects, _stored
from tests.support.images import write_image_files

RAY = shutil.which("ray", path=str(Path(sys.executable).parent))
WORKER_LAUNCHER = (  # `ray start` as is, but a loopback address stays loopback
    "import sys; from ray._private import services; "
    "services.resolve_ip_for_localhost = lambda host: host; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
)


def _free_ports(count: int) -> list[int]:
    """Ports free on loopback now (held open together so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _node_command(temp_dir: str, head_port: int, head: bool) -> list[str]:
    """``ray start --block`` for a head or a worker node: one CPU, 127.0.0.1, ports of its own."""
    ports = _free_ports(9)
    ray = [str(RAY)] if head else [sys.executable, "-c", WORKER_LAUNCHER]
    command = [
        *ray, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
        "--num-gpus=0", "--disable-usage-stats",
        f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
        f"--min-worker-port={ports[2]}", f"--max-worker-port={ports[2] + 40}",
        f"--dashboard-agent-listen-port={ports[3]}", f"--dashboard-agent-grpc-port={ports[4]}",
        f"--metrics-export-port={ports[5]}", f"--runtime-env-agent-port={ports[6]}",
    ]
    if head:
        return [*command, "--head", f"--port={head_port}", f"--temp-dir={temp_dir}",
                "--include-dashboard=false", f"--ray-client-server-port={ports[7]}"]
    return [*command, f"--address=127.0.0.1:{head_port}"]


def _env(token: str, local: bool) -> dict[str, str]:
    """The environment of a Ray process: this cluster's token; ``local``: Ray's local-only
    switch (node IP and every server on 127.0.0.1), for the head and the drivers."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
           "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop(ray_engine.LOCAL_ONLY_ENV, None)
    return {**env, ray_engine.LOCAL_ONLY_ENV: "0"} if local else env


@pytest.fixture
def two_nodes() -> Iterator[tuple[str, str, list[psutil.Process]]]:
    """(address, token, [head, worker] ``ray start`` processes) of two 1-CPU nodes."""
    if RAY is None:
        pytest.skip("Ray is the optional extra mmrag[ray]")
    temp_dir = tempfile.mkdtemp(prefix="mmrag-ray-")  # short: Ray's socket paths must fit
    head_port = _free_ports(1)[0]
    address = f"127.0.0.1:{head_port}"
    token = secrets.token_hex(32)
    started: list[subprocess.Popen[bytes]] = []
    try:
        for head in (True, False):
            log = Path(temp_dir) / f"{'head' if head else 'worker'}.out"
            with log.open("wb") as out:
                started.append(subprocess.Popen(
                    _node_command(temp_dir, head_port, head), env=_env(token, local=head),
                    start_new_session=True, stdout=out, stderr=subprocess.STDOUT))
            _wait_started(log, started[-1])
        yield address, token, [psutil.Process(p.pid) for p in started]
    finally:
        for proc in reversed(started):
            _stop(proc)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_started(log: Path, proc: subprocess.Popen[bytes]) -> None:
    """Until ``ray start --block`` says its node runs (or exits)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        assert proc.poll() is None, f"ray start exited: {text[-2000:]}"
        if "will now block forever" in text:
            return
        time.sleep(0.3)
    raise AssertionError(f"ray start never said its node runs: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one node: SIGTERM to its ``ray start --block`` and its processes (a session of
    their own), then SIGKILL to whatever of them is left after 5 s."""
    family: list[psutil.Process] = []
    with contextlib.suppress(psutil.NoSuchProcess):
        family = psutil.Process(proc.pid).children(recursive=True)
    for member in [psutil.Process(proc.pid), *family] if proc.poll() is None else family:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.terminate()
    _, alive = psutil.wait_procs(family, timeout=5)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _sockets(roots: list[psutil.Process]) -> list[tuple[str, str, str, str]]:
    """(process, status, local ip, remote ip) of each socket of the nodes' processes."""
    found = []
    for root in roots:
        for proc in [root, *root.children(recursive=True)]:
            try:
                for conn in proc.net_connections("inet"):
                    remote = conn.raddr.ip if conn.raddr else ""
                    found.append((proc.name(), conn.status, conn.laddr.ip, remote))
            except psutil.NoSuchProcess:
                continue
    return found


@pytest.mark.server
@pytest.mark.slow
def test_two_ray_nodes_ingest_like_the_local_job(
    tmp_path: Path, milvus_server: EmbeddedServer, tiny_model_files: tuple[Path, Path],
    two_nodes: tuple[str, str, list[psutil.Process]], capsys: pytest.CaptureFixture[str],
) -> None:
    address, token, nodes = two_nodes
    folder = tmp_path / "data"
    write_image_files(folder, 40, sizes=((48, 64), (64, 48)))
    shutil.copy(folder / "img_0000.jpg", folder / "copy.jpg")
    (folder / "broken.png").write_bytes(b"not a png")
    suffix = time.monotonic_ns()
    local, distributed = f"local_{suffix}", f"multi_{suffix}"
    common = ["--uri", milvus_server.uri, *model_args(*tiny_model_files), "--json"]
    try:
        code = mmrag_main(["ingest", str(folder), *common, "--collection", local,
                           "--rejects", str(tmp_path / "local.jsonl")])
        mine = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0
        done = subprocess.run(
            [sys.executable, "-m", "mmrag", "ingest", str(folder), *common,
             "--collection", distributed, "--engine", "ray", "--address", address,
             "--rejects", str(tmp_path / "ray.jsonl")],
            capture_output=True, text=True, timeout=300, env=_env(token, local=True),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        theirs = json.loads(done.stdout.strip().splitlines()[-1])
        sockets = _sockets(nodes)
        assert sockets and [s for s in sockets if not (_loopback(s[2]) and _loopback(s[3]))] == []
        used = {node for counts in theirs["nodes"].values() for node in counts}
        assert len(used) == 2, theirs["nodes"]  # the stages ran on both nodes
        assert all(sum(c.values()) == theirs["scanned"] for c in theirs["nodes"].values())
        assert {k: mine[k] for k in COMPARED} == {k: theirs[k] for k in COMPARED}
        assert (theirs["ingested"], theirs["duplicates"], theirs["rejected"]) == (40, 1, 1)
        assert _stored(milvus_server.uri, local) == _stored(milvus_server.uri, distributed)
        assert _rejects(tmp_path / "local.jsonl") == _rejects(tmp_path / "ray.jsonl") == [
            (str(folder / "broken.png"), "decode")
        ]
    finally:
        for name in (local, distributed):
            with MilvusStore(milvus_server.uri, name) as store:
                store.drop()
