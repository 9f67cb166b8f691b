"""No 500s from client input: deep JSON is a 422, numbers are strict, the schema's examples are
accepted by the server, and every status a route answers is documented in the schema."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from mmrag.cli import main as mmrag_main
from retrieval.api import create_app
from retrieval.api.json_input import MAX_JSON_DEPTH, json_depth, too_deep
from retrieval.api.openai.errors import is_openai_path
from retrieval.config import Settings
from retrieval.demo.synthetic import write_dataset
from tests.api.helpers import ApiData, error_of, wait_ready

DEEP = 5000  # far past Python's recursion limit: json.loads alone raises RecursionError


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 40, 3), 120, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def test_json_depth_skips_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": []}]}') == 4
    assert json_depth(b'["[[[[", "\\"[[[", {"x": "}}}}"}]') == 2
    assert json_depth(b"[" * 100 + b"]" * 100) == 100
    assert not too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert too_deep(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert not too_deep(b'{"q": "' + b"[" * 10_000 + b'"}')  # brackets inside a string


def test_a_deeply_nested_filter_form_field_is_422(client: TestClient) -> None:
    for nested in ("[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP):
        response = client.post(
            "/search/image", files={"file": ("q.png", _png(), "image/png")},
            data={"filter": nested},
        )
        assert response.status_code == 422, response.text
        assert "levels deep" in error_of(response)["message"]


@pytest.mark.parametrize("path", ["/search", "/search/image", "/search/similar"])
def test_deeply_nested_json_bodies_are_422(client: TestClient, path: str) -> None:
    body = '{"query": "a dog", "filter": ' + "[" * DEEP + "]" * DEEP + "}"
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert "levels deep" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("k", True), ("k", "5"), ("k", 5.0), ("offset", "1"), ("offset", False),
     ("min_score", "0.5"), ("min_score", True), ("diversity", "0.1"), ("collection", 5)],
)
def test_search_options_are_strict(client: TestClient, field: str, value: object) -> None:
    response = client.post("/search", json={"query": "a dog", field: value})
    assert response.status_code == 422, response.text
    assert error_of(response)["details"][0]["field"] == field


def test_similar_include_self_is_a_boolean(client: TestClient, api_data: ApiData) -> None:
    item = next(iter(api_data.ids.values()))
    response = client.post("/search/similar", json={"id": item, "include_self": "yes"})
    assert response.status_code == 422, response.text
    assert client.post("/search/similar", json={"id": item, "include_self": True}).is_success


@pytest.mark.parametrize(
    ("field", "text"),
    [("k", "true"), ("k", "5.5"), ("k", "1e3x"), ("offset", "one"), ("min_score", "nan"),
     ("diversity", "high")],
)
def test_form_fields_must_have_their_type(client: TestClient, field: str, text: str) -> None:
    response = client.post(
        "/search/image", files={"file": ("q.png", _png(), "image/png")}, data={field: text}
    )
    assert response.status_code == 422, response.text
    assert error_of(response)["details"][0]["field"] == field


def test_typed_form_fields_are_accepted(client: TestClient) -> None:
    response = client.post(
        "/search/image", files={"file": ("q.png", _png(), "image/png")},
        data={"k": " 3 ", "offset": "+1", "min_score": "-1", "diversity": ".5"},
    )
    assert response.status_code == 200, response.text
    assert (response.json()["k"], response.json()["offset"]) == (3, 1)


# ----- the schema against the server: examples accepted, statuses documented ----------------


@pytest.fixture(scope="module")
def demo_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The API over a small demo collection (the shipped mmrag-demo model, its metadata)."""
    root = tmp_path_factory.mktemp("demo_examples")
    manifest = write_dataset(root / "gallery", 20, seed=5)
    db = str(root / "demo.db")
    argv = ["ingest", str(manifest), "--uri", db, "--collection", "demo",
            "--model", "mmrag-demo", "--device", "cpu", "--quiet"]
    assert mmrag_main(argv) == 0
    settings = Settings(uri=db, collection="demo", model="mmrag-demo", pretrained=None,
                        device="cpu", thumbnail_dir=root / "thumbs")
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[1]
        node = schema["components"]["schemas"][name]
    return node


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _json_body_schema(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    content = operation.get("requestBody", {}).get("content", {})
    body = content.get("application/json", {}).get("schema")
    return None if body is None else _resolve(schema, body)


def _bases(client: TestClient) -> dict[tuple[str, str], dict[str, Any] | None]:
    """Bodies of the required fields that have no example (None: cannot be sent offline)."""
    ids = client.post("/search", json={"query": "a red circle", "k": 1}).json()["hits"]
    return {
        ("POST", "/search"): {},
        ("POST", "/search/similar"): {"id": ids[0]["id"]},
        ("POST", "/search/image"): None,  # needs a public image URL
        ("POST", "/items/delete"): {"dry_run": True},  # counts; deleting needs "confirm"
        ("POST", "/chat"): {"messages": [{"role": "user", "content": "a red circle"}]},
        ("POST", "/v1/chat/completions"): {
            "model": "demo", "messages": [{"role": "user", "content": "a red circle"}]
        },
    }


def test_every_example_in_the_schema_is_accepted(demo_client: TestClient) -> None:
    schema = demo_client.get("/openapi.json").json()
    bases = _bases(demo_client)
    sent = 0
    for method, path, operation in _operations(schema):
        body_schema = _json_body_schema(schema, operation)
        if body_schema is None:
            continue
        properties = {k: _resolve(schema, v) for k, v in body_schema.get("properties", {}).items()}
        examples = {k: v["examples"] for k, v in properties.items() if v.get("examples")}
        missing = [k for k in body_schema.get("required", []) if k not in examples]
        if not examples:
            continue
        assert (method, path) in bases or not missing, f"{method} {path}: no example of {missing}"
        base = bases.get((method, path), {})
        if base is None:
            continue
        for field, values in examples.items():
            for value in values:
                body = {**{k: v[0] for k, v in examples.items()}, **base, field: value}
                response = demo_client.request(method, path, json=body)
                assert response.is_success, (method, path, body, response.text)
                sent += 1
    assert sent >= 3  # the query, the filter on /search and on /search/similar at least


def _documented(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"] if code.isdigit()}


def _bad_requests(method: str, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Requests each route must refuse with a documented status."""
    url = path.replace("{item_id}", "no-such-item").replace("{model}", "no-such-model")
    yield url, {"headers": {"content-length": str(10**9)}, "content": b""}  # 413
    if method == "GET":
        yield url + "?collection=no_such_collection", {}
        yield url + "?collection=bad-name!", {}
        yield url + "?size=5", {}
    else:
        yield url, {"json": {"k": True, "query": 1, "messages": "x", "id": "x"}}
        yield url, {"json": {"collection": "no_such_collection", "query": "x", "id": "x"}}
        yield url, {"content": b"[" * 10_000, "headers": {"content-type": "application/json"}}
        yield url, {"content": b"\xff\xfe{", "headers": {"content-type": "application/json"}}


def test_every_status_a_route_answers_is_documented(
    demo_client: TestClient, tmp_path: Path
) -> None:
    schema = demo_client.get("/openapi.json").json()
    keyed_settings = demo_client.app.state.settings.model_copy(update={"api_key": "k3y"})
    with TestClient(create_app(keyed_settings)) as keyed:
        for method, path, operation in _operations(schema):
            if is_openai_path(path):
                continue  # /v1 documents its own statuses, in OpenAI's error shape
            documented = _documented(operation)
            for url, extra in _bad_requests(method, path):
                response = demo_client.request(method, url, **extra)
                assert response.status_code in documented, (method, url, response.status_code,
                                                             response.text[:200], documented)
            unauthorised = keyed.request(method, path.replace("{item_id}", "x"))
            assert unauthorised.status_code in documented | {200}, (method, path)
