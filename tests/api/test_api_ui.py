"""The web UI's server side: the page and its files, POST /search/similar, GET /fields.

(The page itself is tested in a real browser under tests/ui/.)
"""

from __future__ import annotations

import posixpath
import re

import pytest
from fastapi.testclient import TestClient

from retrieval.api import create_app
from retrieval.api.routers.ui import STATIC_DIR, STATIC_FILES
from tests.api.helpers import LABELS, ApiData, error_of

KEY = "ui-s3cret"
# The modules app.js is split into (by view, and the pieces the views share).
VIEW_MODULES = ("search.js", "detail.js", "chat.js", "key.js", "filters.js", "collection.js",
                "views.js", "errors.js", "hits.js", "images.js")
IMPORT_FROM = re.compile(r'\b(?:from|import)\s*"(\.{1,2}/[^"]+)"')


# ----- page and static files -----------------------------------------------------------------


def test_page_is_served_with_a_strict_policy(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    html = response.text
    assert '<script type="module" src="static/app.js"></script>' in html
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)  # no inline script
    assert not re.search(r"\son[a-z]+=", html)  # no inline handlers
    assert "<style" not in html and " style=" not in html
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    for ref in re.findall(r'(?:src|href)="(static/[^"]+)"', html):
        assert client.get(f"/{ref}").status_code == 200, ref


@pytest.mark.parametrize(
    ("name", "media"),
    [("app.js", "text/javascript"), ("api.js", "text/javascript"),
     ("dom.js", "text/javascript"), ("app.css", "text/css"), ("favicon.svg", "image/svg+xml"),
     ("index.html", "text/html"), *((name, "text/javascript") for name in VIEW_MODULES)],
)
def test_static_files(client: TestClient, name: str, media: str) -> None:
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media)
    assert response.content == (STATIC_DIR / name).read_bytes()
    assert "content-security-policy" in response.headers


@pytest.mark.parametrize(
    "path",
    ["/static/nope.js", "/static/../routers/ui.py", "/static/%2e%2e/routers/ui.py",
     "/static/..%2f..%2fservice.py", "/static/", "/static//etc/passwd", "/static/.hidden"],
)
def test_only_shipped_files_are_served(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert error_of(response)["type"] == "not_found"


def test_every_shipped_file_is_in_the_table() -> None:
    assert {"index.html", "app.js", "api.js", "dom.js", "app.css"} <= set(STATIC_FILES)
    for path in STATIC_FILES.values():
        assert path.resolve().is_relative_to(STATIC_DIR)
    assert set(VIEW_MODULES) <= set(STATIC_FILES)


def _imports(name: str) -> list[str]:
    """The static files a module imports (relative specifiers, resolved)."""
    source = (STATIC_DIR / name).read_text(encoding="utf-8")
    folder = posixpath.dirname(name)
    return [posixpath.normpath(posixpath.join(folder, spec))
            for spec in IMPORT_FROM.findall(source)]


def test_every_module_the_page_imports_is_served_as_javascript(client: TestClient) -> None:
    """From app.js down, each import is a shipped file, served like app.js itself."""
    page = client.get("/static/app.js")
    seen: set[str] = set()
    todo = ["app.js"]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        response = client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "text/javascript; charset=utf-8", name
        assert response.headers["etag"], name
        for header in ("cache-control", "content-security-policy", "x-content-type-options"):
            assert response.headers[header] == page.headers[header], (name, header)
        todo.extend(_imports(name))
    assert seen == {name for name in STATIC_FILES if name.endswith(".js")}  # none unused


def test_modules_import_each_other_without_cycles() -> None:
    """Views report to app.js (callbacks, events) instead of importing each other in a ring."""
    graph = {name: _imports(name) for name in STATIC_FILES if name.endswith(".js")}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name not in done:
            for imported in graph[name]:
                visit(imported, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())


def test_scripts_never_build_markup_from_data() -> None:
    """Retrieved captions and metadata are untrusted: only textContent and attributes."""
    for name, path in STATIC_FILES.items():
        if name.endswith(".js"):
            source = path.read_text(encoding="utf-8")
            for banned in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                           "eval(", "new Function", "setTimeout(\"", "http://", "https://"):
                assert banned not in source, (name, banned)


def test_page_loads_without_the_key_data_routes_do_not(api_data: ApiData) -> None:
    with TestClient(create_app(api_data.settings_with(api_key=KEY))) as keyed:
        assert keyed.get("/").status_code == 200
        assert keyed.head("/").status_code in (200, 405)
        assert keyed.get("/static/app.js").status_code == 200
        assert keyed.get("/static/nope.js").status_code == 404  # no file, and no data either
        for method, path in [("POST", "/"), ("GET", "/fields"), ("POST", "/search/similar"),
                             ("POST", "/static/app.js"), ("GET", "/stats")]:
            response = keyed.request(method, path, json={"id": "x"})
            assert response.status_code == 401, (method, path)
            assert error_of(response)["type"] == "unauthorized"
        assert keyed.get("/fields", headers={"X-API-Key": KEY}).status_code == 200


# ----- POST /search/similar ------------------------------------------------------------------


def _ids(response: object) -> list[str]:
    assert response.status_code == 200, response.text  # type: ignore[attr-defined]
    return [hit["id"] for hit in response.json()["hits"]]  # type: ignore[attr-defined]


def test_similar_leaves_the_item_out_by_default(client: TestClient, api_data: ApiData) -> None:
    item = api_data.ids[str(api_data.images[5])]
    hits = client.post("/search/similar", json={"id": item, "k": 5}).json()["hits"]
    assert len(hits) == 5 and item not in [hit["id"] for hit in hits]
    assert hits[0]["thumbnail_url"].endswith("size=256")
    with_self = client.post("/search/similar", json={"id": item, "k": 5, "include_self": True})
    first = with_self.json()["hits"][0]
    assert first["id"] == item and first["score"] == pytest.approx(1.0, abs=1e-3)
    assert [h["id"] for h in with_self.json()["hits"][1:]] == [h["id"] for h in hits[:4]]


def test_similar_pages_are_consistent_and_filtered(client: TestClient, api_data: ApiData) -> None:
    item = api_data.ids[str(api_data.images[0])]
    whole = _ids(client.post("/search/similar", json={"id": item, "k": 8}))
    first = _ids(client.post("/search/similar", json={"id": item, "k": 4}))
    second = _ids(client.post("/search/similar", json={"id": item, "k": 4, "offset": 4}))
    assert first + second == whole and item not in whole
    dogs = client.post("/search/similar", json={"id": item, "k": 10, "filter": {"label": "dog"}})
    hits = dogs.json()["hits"]
    assert hits and all(hit["metadata"]["label"] == "dog" for hit in hits)
    assert item not in [hit["id"] for hit in hits]  # item 0 is a dog: still left out


def test_similar_errors(client: TestClient, api_data: ApiData) -> None:
    missing = client.post("/search/similar", json={"id": "no-such-item"})
    assert missing.status_code == 404 and error_of(missing)["type"] == "item_not_found"
    bad_id = client.post("/search/similar", json={"id": "../etc"})
    assert bad_id.status_code == 422
    item = api_data.ids[str(api_data.images[0])]
    unknown = client.post("/search/similar", json={"id": item, "filter": {"colour": "red"}})
    assert unknown.status_code == 422 and error_of(unknown)["type"] == "unknown_filter_field"
    extra = client.post("/search/similar", json={"id": item, "query": "dog"})
    assert extra.status_code == 422
    other = client.post("/search/similar", json={"id": item, "collection": "nope_missing"})
    assert other.status_code == 404


def test_similar_in_another_collection(client: TestClient, api_data: ApiData) -> None:
    item = api_data.other_ids[0]
    response = client.post("/search/similar", json={"id": item, "collection": "other", "k": 5})
    ids = _ids(response)
    assert set(ids) == set(api_data.other_ids) - {item}
    assert "collection=other" in response.json()["hits"][0]["thumbnail_url"]


# ----- GET /fields ---------------------------------------------------------------------------


def test_fields_lists_columns_and_sampled_metadata(client: TestClient) -> None:
    response = client.get("/fields")
    assert response.status_code == 200
    body = response.json()
    assert body["collection"] == "items" and body["sampled"] == 17
    fields = {field["name"]: field for field in body["fields"]}
    assert {"id", "caption", "source", "modality"} <= set(fields)
    assert fields["modality"]["kind"] == "column" and fields["modality"]["values"] == ["image"]
    label = fields["label"]
    assert label["kind"] == "metadata" and label["types"] == ["string"]
    assert label["values"] == sorted([*LABELS, "video"]) and label["count"] == 17
    assert fields["year"]["types"] == ["number"] and fields["year"]["values"] == list(
        range(2016, 2024))
    assert fields["indoor"]["types"] == ["boolean"] and fields["indoor"]["values"] == [False, True]
    assert fields["frame"]["count"] == 1 and fields["frame"]["values"] == [5]
    assert fields["rating"]["values"] is None or len(fields["rating"]["values"]) <= 30
    assert fields["video"]["values"] is None or fields["video"]["count"] == 1


def test_fields_of_another_collection(client: TestClient) -> None:
    body = client.get("/fields", params={"collection": "other"}).json()
    assert body["collection"] == "other" and body["sampled"] == 3
    assert [f["kind"] for f in body["fields"]] == ["column"] * 4
    missing = client.get("/fields", params={"collection": "nope_missing"})
    assert missing.status_code == 404
    assert client.get("/fields", params={"collection": "bad name"}).status_code == 422


def test_fields_values_are_only_offered_when_few() -> None:
    from retrieval.fields import MAX_FIELD_VALUES
    from retrieval.fields import FieldStats as _FieldStats

    many = _FieldStats()
    for value in range(MAX_FIELD_VALUES + 1):
        many.add(value)
    assert many.too_many and many.count == MAX_FIELD_VALUES + 1
    long = _FieldStats()
    long.add("x" * 200)
    assert long.too_many
    mixed = _FieldStats()
    for item in ("a", 1, True, None):
        mixed.add(item)
    assert mixed.types == {"string", "number", "boolean", "other"} and mixed.too_many
