"""Health, readiness, stats, metrics, OpenAPI, API key, CORS, and Milvus going away."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from fastapi.testclient import TestClient

from retrieval.api import create_app
from retrieval.components import build_components
from tests.api.helpers import (
    ApiData,
    SocketProxy,
    error_of,
    free_port,
    tiny_settings,
    wait_ready,
)
from tests.support.images import write_image_files


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["collection"] == "items"
    assert body["collection_exists"] is True and body["model"].startswith("mmrag-test-tiny")


def test_collections_and_stats(client: TestClient) -> None:
    listed = client.get("/collections").json()["collections"]
    by_name = {c["name"]: c for c in listed}
    assert by_name["items"]["default"] is True and by_name["items"]["count"] == 17
    assert by_name["items"]["dimension"] == 32 and by_name["items"]["index"] == "FLAT"
    if "other" in by_name:  # listed when the store can enumerate collections
        assert by_name["other"]["count"] == 3 and by_name["other"]["default"] is False
    stats = client.get("/stats").json()
    assert stats["collection"] == "items" and stats["count"] == 17
    assert stats["dimension"] == 32 and stats["index"] == "FLAT" and stats["metric"] == "IP"
    assert stats["model"] == stats["query_model"] and stats["model_loaded"] is True
    assert stats["query_cache"]["capacity"] == 1024
    other = client.get("/stats", params={"collection": "other"}).json()
    assert other["collection"] == "other" and other["count"] == 3
    assert client.get("/stats", params={"collection": "missing_one"}).status_code == 404
    assert client.get("/stats", params={"collection": "../x"}).status_code == 422


def test_query_cache_counts_repeats(client: TestClient) -> None:
    before = client.get("/stats").json()["query_cache"]
    for _ in range(3):
        assert client.post("/search", json={"query": "a unique cached query"}).status_code == 200
    after = client.get("/stats").json()["query_cache"]
    assert after["misses"] - before["misses"] == 1
    assert after["hits"] - before["hits"] == 2


def test_metrics_in_prometheus_format(client: TestClient) -> None:
    client.post("/search", json={"query": "metrics probe"})
    client.post("/search", json={"query": ""})
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for status in ("200", "422"):
        sample = f'mmrag_http_requests_total{{method="POST",route="/search",status="{status}"}} '
        assert re.search(re.escape(sample) + r"\d+", text), status
    bucket = 'mmrag_http_request_duration_seconds_bucket{method="POST",route="/search",le="+Inf"}'
    assert bucket in text
    assert re.search(r'mmrag_embed_seconds_count\{modality="text"\} \d+', text)
    assert re.search(r"mmrag_search_seconds_count \d+", text)
    assert "# TYPE mmrag_http_request_duration_seconds histogram" in text
    for line in text.splitlines():  # every sample line is "name{labels} value"
        sample = re.fullmatch(r"[a-z_]+(\{.*\})? [0-9.e+-]+", line)
        assert line.startswith("#") or sample, line


def test_openapi_documents_endpoints_and_filter_grammar(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in ("/search", "/search/image", "/items/{item_id}", "/items/{item_id}/image",
                 "/collections", "/stats", "/health", "/ready", "/metrics"):
        assert path in paths, path
    body = paths["/search/image"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    search_schema = schema["components"]["schemas"]["TextSearchRequest"]["properties"]
    assert "gte" in search_schema["filter"]["description"]
    assert "bearer" in schema["components"]["securitySchemes"]
    assert "ErrorResponse" in schema["components"]["schemas"]


def test_concurrent_requests_in_process_match_sequential(client: TestClient) -> None:
    queries = [f"concurrency probe {i % 7}" for i in range(28)]
    def ask(query: str) -> object:
        return client.post("/search", json={"query": query, "k": 5})

    sequential = {q: ask(q).json()["hits"] for q in queries}  # type: ignore[attr-defined]
    with ThreadPoolExecutor(14) as pool:
        results = list(pool.map(ask, queries))
    for query, response in zip(queries, results, strict=True):
        assert response.status_code == 200
        assert [h["id"] for h in response.json()["hits"]] == [h["id"] for h in sequential[query]]


# ----- API key and CORS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed_client(api_data: ApiData) -> TestClient:
    settings = api_data.settings_with(api_key="s3cret-key", cors_origins=["https://app.example"])
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_api_key_guards_every_route_but_health(keyed_client: TestClient, api_data: ApiData) -> None:
    item_id = api_data.ids[str(api_data.images[0])]
    routes = [("GET", "/ready"), ("GET", "/stats"), ("GET", "/collections"), ("GET", "/metrics"),
              ("GET", f"/items/{item_id}"), ("GET", f"/items/{item_id}/image"),
              ("POST", "/search"), ("POST", "/search/image"), ("POST", "/docs"),
              ("GET", "/nope")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "s3cret-ke"},
                        {"Authorization": "Basic s3cret-key"}, {"Authorization": "s3cret-key"}):
            response = keyed_client.request(method, path, headers=headers, json={"query": "dog"})
            assert response.status_code == 401, (method, path, headers)
            assert error_of(response)["type"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    assert keyed_client.get("/health").status_code == 200
    for page in ("/docs", "/redoc", "/openapi.json"):  # describe routes, not data (#17.6)
        assert keyed_client.get(page).status_code == 200, page
    wait_ready(keyed_client.__class__(keyed_client.app, headers={"X-API-Key": "s3cret-key"}))
    for headers in ({"Authorization": "Bearer s3cret-key"}, {"X-API-Key": "s3cret-key"},
                    {"authorization": "bearer s3cret-key"}):
        assert keyed_client.get(f"/items/{item_id}", headers=headers).status_code == 200
        response = keyed_client.post("/search", json={"query": "dog"}, headers=headers)
        assert response.status_code == 200


def test_cors(keyed_client: TestClient) -> None:
    preflight = keyed_client.options(
        "/search",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"},
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    denied = keyed_client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers
    allowed = keyed_client.get("/health", headers={"Origin": "https://app.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


# ----- Milvus unreachable --------------------------------------------------------------------


def test_unreachable_milvus_is_503_and_health_stays_up(api_data: ApiData) -> None:
    settings = api_data.settings_with(uri=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with TestClient(create_app(settings)) as down:
        assert down.get("/health").status_code == 200
        ready = down.get("/ready")
        assert ready.status_code == 503 and error_of(ready)["type"] == "not_ready"
        assert "Milvus" in error_of(ready)["message"]
        for method, path, body in (("POST", "/search", {"query": "dog"}), ("GET", "/stats", None),
                                   ("GET", "/collections", None), ("GET", "/items/abc", None)):
            response = down.request(method, path, json=body)
            assert response.status_code == 503, (path, response.text)
            error = error_of(response)
            assert error["type"] == "store_unavailable" and "unavailable" in error["message"]
        assert down.get("/health").status_code == 200
    assert time.monotonic() - started < 30


def _lite_server_of(db: Path) -> list[psutil.Process]:
    """Milvus Lite server processes (children of this process) serving this .db file."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(str(db) in part for part in child.cmdline()):
                found.append(child)
        except psutil.Error:
            continue
    return found


def test_recovers_after_milvus_lite_dies(
    tmp_path: Path, tiny_model_files: tuple[Path, Path]
) -> None:
    from ingest.job import run_ingest
    from ingest.sources import open_source

    config, checkpoint = tiny_model_files
    settings = tiny_settings(tmp_path, config, checkpoint)
    write_image_files(tmp_path / "imgs", 4)
    components = build_components(settings)
    try:
        run_ingest(components, open_source(tmp_path / "imgs"))
    finally:
        components.close()
    with TestClient(create_app(settings)) as app_client:
        wait_ready(app_client)
        before = app_client.post("/search", json={"query": "dog", "k": 4}).json()["hits"]
        servers = _lite_server_of(Path(settings.uri).resolve())
        assert servers, "no Milvus Lite process found"
        for server in servers:
            server.kill()
            server.wait(10)
        time.sleep(1.1)  # past the reconnect interval
        statuses = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            response = app_client.post("/search", json={"query": "dog", "k": 4})
            statuses.append(response.status_code)
            if response.status_code == 200:
                break
            assert response.status_code == 503 and error_of(response)["message"]
            assert app_client.get("/health").status_code == 200
            time.sleep(0.5)
        assert statuses[-1] == 200, statuses
        assert response.json()["hits"] == before
        assert app_client.get("/ready").status_code == 200


def test_milvus_server_outage_is_503_then_recovers(api_data: ApiData) -> None:
    """A server URI (the shared Lite collection behind a TCP proxy) going down and coming back."""
    holder = build_components(api_data.settings)  # keeps this process's Lite server running
    try:
        servers = _lite_server_of(Path(api_data.settings.uri).resolve())
        sockets = [a for s in servers for a in s.cmdline() if a.startswith("unix:")]
        assert sockets, "no Milvus Lite socket found"
        proxy = SocketProxy(sockets[0].removeprefix("unix:"))
        proxy.start()
        settings = api_data.settings_with(uri=f"http://127.0.0.1:{proxy.port}")
        try:
            with TestClient(create_app(settings)) as served:
                wait_ready(served)
                before = served.post("/search", json={"query": "dog", "k": 5}).json()["hits"]
                proxy.stop()
                for _ in range(3):
                    response = served.post("/search", json={"query": "dog", "k": 5})
                    assert response.status_code == 503, response.text
                    assert error_of(response)["type"] == "store_unavailable"
                    assert served.get("/ready").status_code == 503
                    assert served.get("/health").status_code == 200
                proxy.start()
                deadline = time.monotonic() + 20
                while served.get("/ready").status_code != 200:
                    assert time.monotonic() < deadline, "did not recover"
                    time.sleep(0.3)
                after = served.post("/search", json={"query": "dog", "k": 5})
                assert after.status_code == 200 and after.json()["hits"] == before
        finally:
            proxy.stop()
    finally:
        holder.close()


def test_model_that_cannot_load_is_503(api_data: ApiData, tmp_path: Path) -> None:
    settings = api_data.settings_with(checkpoint=tmp_path / "missing.safetensors")
    with TestClient(create_app(settings)) as broken:
        deadline = time.monotonic() + 30
        while "loading" in (ready := broken.get("/ready")).text:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ready.status_code == 503 and "missing.safetensors" in error_of(ready)["message"]
        response = broken.post("/search", json={"query": "dog"})
        assert response.status_code == 503 and error_of(response)["type"] == "model_unavailable"
        assert broken.get("/health").status_code == 200
        assert broken.get("/stats").json()["model_loaded"] is False
