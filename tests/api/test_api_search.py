"""POST /search and /search/image through TestClient: happy paths, filters, paging, bad input."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from retrieval.api import create_app
from tests.api.helpers import LABELS, ApiData, error_of, wait_ready

HIT_FIELDS = {"id", "score", "caption", "metadata", "source", "modality", "image_url",
              "thumbnail_url"}


def search(client: TestClient, **body: object) -> dict:
    """POST /search and return the JSON of a 200."""
    response = client.post("/search", json={"query": "a photo of a dog", **body})
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(result: dict) -> list[str]:
    return [hit["id"] for hit in result["hits"]]


# ----- text search: happy paths ------------------------------------------------------------


def test_text_search_returns_ranked_hits_with_served_image_urls(
    client: TestClient, api_data: ApiData
) -> None:
    result = search(client, k=5)
    assert result["collection"] == "items" and result["k"] == 5 and result["offset"] == 0
    hits = result["hits"]
    assert len(hits) == 5
    assert all(set(hit) == HIT_FIELDS for hit in hits)
    scores = [hit["score"] for hit in hits]
    assert scores == sorted(scores, reverse=True)
    first = hits[0]
    assert first["image_url"] == f"/items/{first['id']}/image"
    assert first["thumbnail_url"] == f"/items/{first['id']}/image?size=256"
    image = client.get(first["image_url"])
    assert image.status_code == 200 and image.headers["content-type"].startswith("image/")
    if first["id"] in api_data.metadata:
        assert first["metadata"] == api_data.metadata[first["id"]]
        assert first["caption"].startswith("a photo of a ")


def test_pages_are_slices_of_one_ranking(client: TestClient) -> None:
    full = ids(search(client, k=12))
    pages = [ids(search(client, k=4, offset=offset)) for offset in (0, 4, 8)]
    assert pages[0] + pages[1] + pages[2] == full
    assert search(client, k=5, offset=16)["hits"] == search(client, k=5, offset=16)["hits"]
    assert len(search(client, k=10, offset=15)["hits"]) == 2  # 17 stored items


def test_min_score_cuts_off_low_hits(client: TestClient) -> None:
    # a cosine floor: it applies to vector ranking (the default is hybrid on this collection)
    scores = [hit["score"] for hit in search(client, k=17, mode="vector")["hits"]]
    cutoff = scores[5]
    kept = search(client, k=17, min_score=cutoff)["hits"]
    assert kept and all(hit["score"] >= cutoff for hit in kept)
    assert len(kept) == sum(score >= cutoff for score in scores)
    assert search(client, k=5, min_score=1.0)["hits"] == []


def test_diversity_reranks_by_mmr(client: TestClient) -> None:
    plain = search(client, k=6, mode="vector")  # MMR re-ranks the vector ranking
    assert ids(search(client, k=6, diversity=0.0, mode="vector")) == ids(plain)
    diverse = search(client, k=6, diversity=0.7)
    assert len(diverse["hits"]) == 6 and len(set(ids(diverse))) == 6
    assert ids(diverse)[0] == ids(plain)[0]  # the best hit is always picked first
    assert ids(diverse) != ids(plain)
    spread = search(client, k=6, diversity=1.0)
    assert ids(spread)[0] == ids(plain)[0] and len(set(ids(spread))) == 6
    second_page = search(client, k=3, offset=3, diversity=0.7)
    assert ids(second_page) == ids(diverse)[3:]


def test_other_collection_is_searchable_by_name(client: TestClient, api_data: ApiData) -> None:
    result = search(client, k=5, collection="other")
    assert result["collection"] == "other"
    assert sorted(ids(result)) == sorted(api_data.other_ids)
    assert result["hits"][0]["image_url"].endswith("/image?collection=other")
    image = client.get(result["hits"][0]["image_url"])
    assert image.status_code == 200


# ----- filters -------------------------------------------------------------------------------


def labels(result: dict) -> set[str]:
    return {hit["metadata"].get("label") for hit in result["hits"]}


def test_structured_filters(client: TestClient, api_data: ApiData) -> None:
    metas = list(api_data.metadata.values())

    def expect(flt: dict, predicate: object) -> None:
        result = search(client, k=50, filter=flt)
        want = sum(1 for m in metas if predicate(m))  # type: ignore[operator]
        assert len(result["hits"]) == want, (flt, result["hits"])
        assert all(predicate(h["metadata"]) for h in result["hits"])  # type: ignore[operator]

    def num(m: dict, key: str) -> float:
        return float(m[key]) if key in m else float("nan")  # rows without the key never match

    expect({"label": "dog"}, lambda m: m["label"] == "dog")
    expect({"label": ["cat", "bird"]}, lambda m: m["label"] in ("cat", "bird"))
    expect({"year": {"gte": 2020}}, lambda m: num(m, "year") >= 2020)
    expect({"label": "dog", "year": {"gte": 2020}},
           lambda m: m["label"] == "dog" and num(m, "year") >= 2020)
    expect({"year": {"gt": 2017, "lte": 2019}}, lambda m: 2017 < num(m, "year") <= 2019)
    expect({"rating": {"lt": 1.0}}, lambda m: num(m, "rating") < 1.0)
    expect({"year": {"in": [2016, 2017.0]}}, lambda m: num(m, "year") in (2016, 2017))
    expect({"label": {"ne": "dog"}}, lambda m: m["label"] != "dog")
    expect({"label": {"nin": ["dog", "cat"]}}, lambda m: m["label"] not in ("dog", "cat"))
    expect({"indoor": True}, lambda m: m.get("indoor") is True)
    expect({"taken": {"gte": "2020-01-01"}}, lambda m: m.get("taken", "") >= "2020-01-01")
    expect({"note": {"contains": "%_"}}, lambda m: "%_" in m.get("note", ""))
    expect({"note": {"contains": "0%"}}, lambda m: "0%" in m.get("note", ""))
    expect({"label": {"prefix": "b"}}, lambda m: m["label"].startswith("b"))
    expect({"video_ts": {"gte": 0}}, lambda m: "video_ts" in m)
    expect({"metadata.label": "fish"}, lambda m: m["label"] == "fish")


def test_filters_on_columns(client: TestClient, api_data: ApiData) -> None:
    some_id = sorted(api_data.metadata)[0]
    assert ids(search(client, k=50, filter={"id": some_id})) == [some_id]
    result = search(client, k=50, filter={"caption": {"contains": "#1"}})
    assert {h["caption"] for h in result["hits"]} == {
        f"a photo of a {LABELS[i % 4]} #{i}" for i in (1, 10, 11, 12, 13, 14, 15)
    }
    assert len(search(client, k=50, filter={"modality": "image"})["hits"]) == 17
    source = str(api_data.images[2])
    assert ids(search(client, k=50, filter={"source": source})) == [api_data.ids[source]]


def test_filter_values_cannot_inject_expressions(client: TestClient) -> None:
    for hostile in ('dog" or id != "', "dog\\\" or true or \\\"", "dog') or (1==1", '" || "'):
        result = search(client, k=50, filter={"label": hostile})
        assert result["hits"] == [], hostile
    assert search(client, k=50, filter={"label": {"contains": "%"}})["hits"] == []


@pytest.mark.parametrize(
    ("flt", "status", "kind", "named"),
    [
        ({"colour": "red"}, 422, "unknown_filter_field", "colour"),
        ({"metadata.nope": 1}, 422, "unknown_filter_field", "metadata.nope"),
        ({"label or 1": "x"}, 422, "invalid_filter", "label or 1"),
        ({'metadata["label"]': "x"}, 422, "invalid_filter", "metadata"),
        ({"year": {"gtee": 2020}}, 422, "invalid_filter", "gtee"),
        ({"year": {}}, 422, "invalid_filter", "year"),
        ({"year": {"in": []}}, 422, "invalid_filter", "year"),
        ({"year": {"in": [1, "a"]}}, 422, "invalid_filter", "year"),
        ({"year": {"gt": True}}, 422, "invalid_filter", "year"),
        ({"year": {"eq": None}}, 422, "invalid_filter", "year"),
        ({"year": {"eq": {"nested": 1}}}, 422, "invalid_filter", "year"),
        ({"caption": 5}, 422, "invalid_filter", "caption"),
        ({"label": "a\x00b"}, 422, "invalid_filter", "label"),
        ({"label": "x" * 2000}, 422, "invalid_filter", "label"),
        ({"year": 2**70}, 422, "invalid_filter", "year"),
        ({"label": {"contains": ""}}, 422, "invalid_filter", "label"),
    ],
)
def test_bad_filters_are_422_naming_the_field(
    client: TestClient, flt: dict, status: int, kind: str, named: str
) -> None:
    response = client.post("/search", json={"query": "dog", "filter": flt})
    assert response.status_code == status, response.text
    error = error_of(response)
    assert error["type"] == kind
    assert named in error["message"]


def test_filter_must_be_an_object(client: TestClient) -> None:
    for bad in ('label == "dog"', ["label"], 3):
        response = client.post("/search", json={"query": "dog", "filter": bad})
        assert response.status_code == 422
        assert "filter" in error_of(response)["message"]


# ----- text search: bad input ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"query": ""}, "query"),
        ({"query": "   \n\t"}, "query"),
        ({"query": "x" * 1001}, "1001"),
        ({}, "query"),
        ({"query": 5}, "query"),
        ({"query": "dog", "k": 0}, "k"),
        ({"query": "dog", "k": 1001}, "k"),
        ({"query": "dog", "k": "ten"}, "k"),
        ({"query": "dog", "offset": -1}, "offset"),
        ({"query": "dog", "k": 1000, "offset": 16000}, "16384"),
        ({"query": "dog", "min_score": 2}, "min_score"),
        ({"query": "dog", "diversity": 1.5}, "diversity"),
        ({"query": "dog", "collection": "bad name!"}, "collection"),
        ({"query": "dog", "unknown": 1}, "unknown"),
        ({"query": "dog", "expr": 'id != ""'}, "expr"),
    ],
)
def test_bad_text_queries_are_422(client: TestClient, body: dict, field: str) -> None:
    response = client.post("/search", json=body)
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert field in error["message"] or field in str(error.get("details")), error


def test_malformed_json_and_wrong_media_type(client: TestClient) -> None:
    json_type = {"content-type": "application/json"}
    broken = client.post("/search", content=b'{"query": ', headers=json_type)
    assert broken.status_code == 422 and error_of(broken)["type"] == "invalid_request"
    text = client.post("/search", content=b"query=dog", headers={"content-type": "text/plain"})
    assert 400 <= text.status_code < 500
    error_of(text)


def test_unknown_collection_is_404(client: TestClient) -> None:
    response = client.post("/search", json={"query": "dog", "collection": "no_such_collection"})
    assert response.status_code == 404
    error = error_of(response)
    assert error["type"] == "collection_not_found" and "no_such_collection" in error["message"]
    upload = client.post(
        "/search/image", files={"file": ("q.png", png_bytes(), "image/png")},
        data={"collection": "no_such_collection"},
    )
    assert upload.status_code == 404


def test_unknown_route_and_method_use_the_error_shape(client: TestClient) -> None:
    assert error_of(client.get("/nope"))["type"] == "not_found"
    wrong = client.get("/search")
    assert wrong.status_code == 405 and error_of(wrong)["type"] == "method_not_allowed"


# ----- image search --------------------------------------------------------------------------


def png_bytes(
    size: tuple[int, int] = (40, 30), colour: tuple[int, int, int] = (200, 30, 30)
) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_image_upload_finds_the_same_image_first(client: TestClient, api_data: ApiData) -> None:
    path = api_data.images[5]
    response = client.post(
        "/search/image",
        files={"file": (path.name, path.read_bytes(), "image/jpeg")},
        data={"k": "3"},
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert len(hits) == 3 and set(hits[0]) == HIT_FIELDS
    assert hits[0]["id"] == api_data.ids[str(path)]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-3)


def test_image_upload_with_form_options(client: TestClient, api_data: ApiData) -> None:
    path = api_data.images[0]
    response = client.post(
        "/search/image",
        files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
        data={"k": "20", "offset": "1", "filter": '{"label": "cat"}', "diversity": "0.3"},
    )
    assert response.status_code == 200, response.text
    hits = response.json()["hits"]
    assert hits and {h["metadata"]["label"] for h in hits} == {"cat"}
    bad = client.post(
        "/search/image", files={"file": (path.name, path.read_bytes(), "image/jpeg")},
        data={"filter": "{not json"},
    )
    assert bad.status_code == 422 and "filter" in error_of(bad)["message"]
    unknown = client.post(
        "/search/image", files={"file": (path.name, path.read_bytes(), "image/jpeg")},
        data={"filter": '{"colour": "red"}'},
    )
    assert unknown.status_code == 422 and "colour" in error_of(unknown)["message"]
    k0 = client.post(
        "/search/image", files={"file": (path.name, path.read_bytes(), "image/jpeg")},
        data={"k": "0"},
    )
    assert k0.status_code == 422 and "k" in error_of(k0)["message"]


def test_upload_that_is_not_an_image_is_415(client: TestClient) -> None:
    fakes = (("notes.txt", b"just some text\n"), ("fake.jpg", b"\xff\xd8\xff" + b"0" * 40))
    for name, data in fakes:
        response = client.post("/search/image", files={"file": (name, data, "image/jpeg")})
        assert response.status_code in (415, 422), response.text
        assert error_of(response)["message"]
    text = client.post("/search/image", files={"file": ("a.txt", b"hello", "text/plain")})
    assert text.status_code == 415 and error_of(text)["type"] == "unsupported_media_type"


def test_empty_upload_and_missing_file_part(client: TestClient) -> None:
    empty = client.post("/search/image", files={"file": ("e.png", b"", "image/png")})
    assert empty.status_code == 422 and "empty" in error_of(empty)["message"]
    missing = client.post("/search/image", data={"k": "3"}, files={"other": ("x", b"x")})
    assert 400 <= missing.status_code < 500
    error_of(missing)


def test_upload_over_the_size_cap_is_413(api_data: ApiData) -> None:
    settings = api_data.settings_with(max_upload_bytes=50_000)
    with TestClient(create_app(settings)) as small:
        wait_ready(small)
        big = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(big).save(buffer, format="PNG")
        assert len(buffer.getvalue()) > 50_000
        files = {"file": ("big.png", buffer.getvalue(), "image/png")}
        response = small.post("/search/image", files=files)
        assert response.status_code == 413 and error_of(response)["type"] == "payload_too_large"
        huge = b"\x89PNG" + b"\0" * 2_000_000  # over the whole-body cap too
        response = small.post("/search/image", files={"file": ("huge.png", huge, "image/png")})
        assert response.status_code == 413
        files = {"file": ("ok.png", png_bytes(), "image/png")}
        assert small.post("/search/image", files=files).status_code == 200


def test_decompression_bomb_is_refused(client: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("1", (10_000, 6_000)).save(buffer, format="PNG")  # 60 MP > the 50 MP cap
    bomb = buffer.getvalue()
    assert len(bomb) < 200_000
    response = client.post("/search/image", files={"file": ("bomb.png", bomb, "image/png")})
    assert response.status_code == 422, response.text
    assert "pixels" in error_of(response)["message"] or "large" in error_of(response)["message"]


def test_image_search_needs_multipart_or_json(client: TestClient) -> None:
    raw = {"content-type": "image/png"}
    response = client.post("/search/image", content=png_bytes(), headers=raw)
    assert response.status_code == 415 and error_of(response)["type"] == "unsupported_media_type"
    no_url = client.post("/search/image", json={"k": 3})
    assert no_url.status_code == 422 and "url" in error_of(no_url)["message"]


# ----- image search by URL -------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        return  # the API hangs up on oversized bodies by design


@pytest.fixture(scope="module")
def image_server(api_data: ApiData) -> Iterator[str]:
    """A loopback HTTP server with an image, a non-image, a big file and a redirect."""
    jpeg = api_data.images[7].read_bytes()
    _Handler.routes = {
        "/cat.jpg": (200, {"Content-Type": "image/jpeg"}, jpeg),
        "/page.html": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/big.jpg": (200, {"Content-Type": "image/jpeg"}, b"\xff" * 3_000_000),
        "/moved": (302, {"Location": "/cat.jpg"}, b""),
        "/secret-redirect": (302, {"Location": "file:///etc/passwd"}, b""),
    }
    server = _QuietServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def private_client(api_data: ApiData) -> Iterator[TestClient]:
    """An app that may fetch loopback URLs (MMRAG_ALLOW_PRIVATE_URLS=true), 2 MB upload cap."""
    settings = api_data.settings_with(allow_private_urls=True, max_upload_bytes=2_000_000)
    with TestClient(create_app(settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def test_search_by_url(private_client: TestClient, image_server: str, api_data: ApiData) -> None:
    want = api_data.ids[str(api_data.images[7])]
    for path in ("/cat.jpg", "/moved"):
        response = private_client.post("/search/image", json={"url": image_server + path, "k": 2})
        assert response.status_code == 200, response.text
        assert response.json()["hits"][0]["id"] == want


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/page.html", 415, "unsupported_media_type"),
        ("/big.jpg", 413, "payload_too_large"),
        ("/missing.jpg", 422, "url_fetch_failed"),
        ("/secret-redirect", 422, "invalid_url"),
    ],
)
def test_bad_urls(
    private_client: TestClient, image_server: str, path: str, status: int, kind: str
) -> None:
    response = private_client.post("/search/image", json={"url": image_server + path})
    assert response.status_code == status, response.text
    assert error_of(response)["type"] == kind


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.com/a.jpg", "http://user:pw@example.com/a.jpg",
     "not a url", "http:///nohost.jpg"],
)
def test_urls_that_are_never_fetched(private_client: TestClient, url: str) -> None:
    response = private_client.post("/search/image", json={"url": url})
    assert response.status_code == 422, response.text
    assert error_of(response)["type"] == "invalid_url"


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.8", "169.254.169.254", "0.0.0.0",
             "[::ffff:127.0.0.1]", "2130706433"],
)
def test_private_hosts_are_refused_by_default(
    client: TestClient, image_server: str, host: str
) -> None:
    port = image_server.rsplit(":", 1)[1]
    response = client.post("/search/image", json={"url": f"http://{host}:{port}/cat.jpg"})
    assert response.status_code == 422, response.text
    assert error_of(response)["type"] in ("url_not_allowed", "invalid_url")



def test_items_with_url_sources(
    private_client: TestClient, client: TestClient, image_server: str, api_data: ApiData
) -> None:
    """An http(s) source: the original is a redirect, a thumbnail is fetched (guarded)."""
    from retrieval.components import build_components
    from retrieval.types import Record

    components = build_components(api_data.settings_with(collection="remote"))
    try:
        embedder = components.embedder
        components.store.ensure_collection(embedder.dim, embedder.model_id)
        vector = np.ones(embedder.dim, dtype=np.float32) / np.sqrt(embedder.dim)
        url = image_server + "/cat.jpg"
        components.store.upsert([Record(id="remote-1", vector=vector, source=url,
                                        model_id=embedder.model_id)])
        components.store.flush()
    finally:
        components.close()
    base = "/items/remote-1/image?collection=remote"
    original = private_client.get(base, follow_redirects=False)
    assert original.status_code == 307 and original.headers["location"] == url
    thumb = private_client.get(base + "&size=32")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert max(small.size) == 32
    refused = client.get(base + "&size=48")  # this app refuses loopback URLs
    assert refused.status_code == 422 and error_of(refused)["type"] == "url_not_allowed"
