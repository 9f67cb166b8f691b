"""Composed queries (#18.3): the CLI syntax, the combination, and `mmrag search` and
`POST /search/composed` over a real Milvus Lite collection (tiny model).

The expected hits are computed independently: the weighted sum of unit vectors made here with
numpy, searched through the store; the CLI and the API must return exactly those.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from retrieval.api import create_app
from retrieval.components import build_components
from retrieval.compose import (
    CompositionError,
    Term,
    TermKind,
    combine,
    is_composed,
    parse_composition,
)
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.imaging import decode_image
from retrieval.search import Searcher, SearchRequest, search_page
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore
from retrieval.types import Record
from tests.api.helpers import tiny_settings, wait_ready
from tests.support.images import write_image_files

T, ITEM, IMG = TermKind.TEXT, TermKind.ITEM, TermKind.IMAGE
OPPOSITE_ID = "opposite-of-red"
OPPOSED_TEXT = "a red thing"


# ----- the syntax and the arithmetic (no model) -----------------------------------------------


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ('"beach" + "sunset" - "people"', [(T, "beach", 1), (T, "sunset", 1), (T, "people", -1)]),
        ('2*"beach"', [(T, "beach", 2)]),
        ('2.5 * "a \\"quoted\\" word" - .5*@ab_1:x', [(T, 'a "quoted" word', 2.5),
                                                     (ITEM, "ab_1:x", -0.5)]),
        ('img:photos/a+b.jpg +"at night"', [(IMG, "photos/a+b.jpg", 1), (T, "at night", 1)]),
        ('img:"my photo.jpg" - 0.3*"blur"', [(IMG, "my photo.jpg", 1), (T, "blur", -0.3)]),
    ],
)
def test_parse_composition(text: str, terms: list[tuple[TermKind, str, float]]) -> None:
    assert is_composed(text)
    assert parse_composition(text) == [Term(k, v, float(w)) for k, v, w in terms]


@pytest.mark.parametrize("text", ["a dog on a beach", "dog + cat - people", "2 dogs", "R-4821",
                                  "", "sunset @ the beach"])
def test_plain_queries_stay_plain(text: str) -> None:
    assert not is_composed(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"beach', "never closed"),
        ('"beach" "sunset"', "expected + or - between terms"),
        ('"beach" + 3', "expected a \"quoted text\""),
        ('"beach" + @', "an item id follows @"),
        ('"beach" * 2', "expected + or -"),
    ],
)
def test_parse_errors_point_at_the_mistake(text: str, message: str) -> None:
    with pytest.raises(CompositionError, match="character") as caught:
        parse_composition(text)
    assert message in str(caught.value)
    assert "beach" in str(caught.value) or "img:photo.jpg" in str(caught.value)


def test_combine_is_the_renormalised_weighted_sum_of_unit_vectors() -> None:
    a, b, c = np.array([3.0, 0, 0]), np.array([0, 0.5, 0]), np.array([0, 0, 2.0])
    terms = [Term(T, "a", 2.0), Term(T, "b", 1.0), Term(T, "c", -1.0)]
    expected = np.array([2.0, 1.0, -1.0]) / np.sqrt(6.0)
    np.testing.assert_allclose(combine(terms, [a, b, c]), expected, rtol=1e-6)
    # one term is that term's direction, whatever its length and weight
    np.testing.assert_allclose(combine([Term(T, "a", 3.0)], [a]), [1, 0, 0])


@pytest.mark.parametrize(
    ("terms", "message"),
    [
        ([], "no terms"),
        ([Term(T, "people", -1.0)], "every term of the composition is negative"),
        ([Term(T, "a", -1.0), Term(T, "b", -2.0)], "every term of the composition is negative"),
        ([Term(T, "a", 1.0), Term(T, "b", -1.0)], "sum to zero"),
        ([Term(T, "a", 2.0), Term(T, "b", -1.0), Term(T, "c", -1.0)], "sum to zero"),
        ([Term(T, "a", 0.0), Term(T, "b", 1.0)], "non-zero weight"),
        ([Term(T, "a", float("nan"))], "finite"),
        ([Term(T, "a", 1000.0)], "within -100..100"),
    ],
)
def test_bad_compositions_are_refused(terms: list[Term], message: str) -> None:
    vectors = [np.eye(3)[i % 3] for i in range(len(terms))]
    with pytest.raises(CompositionError, match=message):
        combine(terms, vectors)


def test_terms_that_cancel_out_are_refused() -> None:
    v = np.array([0.6, 0.8, 0.0])
    with pytest.raises(CompositionError, match="cancel each other out"):
        combine([Term(T, "x", 1.0), Term(ITEM, "y", 1.0)], [v, -v * 3.0])


# ----- over a real collection -----------------------------------------------------------------


@dataclass(frozen=True)
class Collection:
    settings: Settings
    images: list[Path]
    ids: list[str]
    labels: dict[str, str]  # id -> label


@pytest.fixture(scope="module")
def collection(
    tmp_path_factory: pytest.TempPathFactory, tiny_model_files: tuple[Path, Path]
) -> Collection:
    """8 labelled images (ingested by the real job) and a row opposite to OPPOSED_TEXT."""
    from ingest.job import IngestOptions, run_ingest
    from ingest.sources import SourceItem

    root = tmp_path_factory.mktemp("compose")
    config, checkpoint = tiny_model_files
    settings = tiny_settings(root, config, checkpoint, query_cache_size=0)
    images = write_image_files(root / "images", 8, ext=".jpg")
    labels = ("dog", "cat")
    items = [SourceItem(source=str(p), caption=f"a {labels[i % 2]}",
                        metadata={"label": labels[i % 2]}) for i, p in enumerate(images)]
    components = build_components(settings)
    try:
        summary = run_ingest(components, items, IngestOptions(batch_size=8, workers=1))
        assert summary.ingested == len(images), summary.rejects
        embedder = components.embedder
        opposite = -embedder.embed_texts([OPPOSED_TEXT])[0]
        components.store.upsert([Record(id=OPPOSITE_ID, vector=opposite, source="opposite",
                                        model_id=embedder.model_id)])
        components.store.flush()
        stored = [r for b in components.store.iterate(with_vectors=False) for r in b]
    finally:
        components.close()
    by_source = {r.source: r for r in stored}
    ids = [by_source[str(p)].id for p in images]
    return Collection(settings, images, ids,
                      {r.id: str(r.metadata.get("label")) for r in stored})


@pytest.fixture(scope="module")
def embedder(collection: Collection) -> Embedder:
    from retrieval.embedders import create_embedder_from_settings

    return create_embedder_from_settings(collection.settings)


@pytest.fixture(scope="module")
def store(collection: Collection) -> Iterator[VectorStore]:
    """The collection, opened once (the CLI runs in this process and shares the Lite file)."""
    with open_store(collection.settings.uri, collection.settings.collection) as opened:
        yield opened


def expected_ids(store: VectorStore, vector: np.ndarray, request: SearchRequest) -> list[str]:
    """The hits of a vector searched directly in the store."""
    return [h.id for h in search_page(store, vector, request)]


def weighted(*parts: tuple[float, np.ndarray]) -> np.ndarray:
    total = sum(w * v / np.linalg.norm(v) for w, v in parts)
    return np.asarray(total / np.linalg.norm(total), dtype=np.float32)


def cli_flags(collection: Collection) -> list[str]:
    s = collection.settings
    return ["--uri", s.uri, "--collection", s.collection, "--model", s.model, "--pretrained", "",
            "--checkpoint", str(s.checkpoint), "--device", "cpu"]


def cli(collection: Collection, capsys: pytest.CaptureFixture[str], query: str,
        *extra: str) -> tuple[int, list[str] | str]:
    """Run `mmrag search QUERY --json`; (0, hit ids) or (exit code, stderr)."""
    code = main(["search", query, "--json", *extra, *cli_flags(collection)])
    captured = capsys.readouterr()
    if code:
        return code, captured.err
    return 0, [h["id"] for h in json.loads(captured.out)]


def test_cli_composed_queries_match_the_weighted_sum(
    collection: Collection, embedder: Embedder, store: VectorStore,
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = embedder.embed_texts(["a dog", "a cat", "grass"])
    image = collection.images[2]
    image_vec = embedder.embed_images([decode_image(image.read_bytes())])[0]
    stored = store.get([collection.ids[5]], with_vectors=True)[0].vector
    request = SearchRequest(k=5)
    cases = {
        '"a dog" + 2*"a cat" - "grass"': weighted((1, text[0]), (2, text[1]), (-1, text[2])),
        f'img:{image} - 0.5*"grass"': weighted((1, image_vec), (-0.5, text[2])),
        f'@{collection.ids[5]} + "a dog"': weighted((1, stored), (1, text[0])),
    }
    for query, vector in cases.items():
        assert cli(collection, capsys, query, "-k", "5") == (0, expected_ids(store, vector,
                                                                              request)), query
    # the options apply as to any query: a filter, paging, MMR
    query = '"a dog" - 0.5*"grass"'
    vector = weighted((1, text[0]), (-0.5, text[2]))
    flt = SearchRequest(k=2, offset=1, expr='metadata["label"] == "cat"')
    got = cli(collection, capsys, query, "-k", "2", "--offset", "1", "--filter",
              '{"label": "cat"}')
    assert got == (0, expected_ids(store, vector, flt))
    assert got[1] and all(collection.labels[i] == "cat" for i in got[1])
    mmr = SearchRequest(k=4, diversity=0.7)
    assert cli(collection, capsys, query, "-k", "4", "--diversity", "0.7") == (
        0, expected_ids(store, vector, mmr))
    # a stored item alone finds itself first; a plain query with operators stays plain text
    assert cli(collection, capsys, f"@{collection.ids[3]}")[1][0] == collection.ids[3]  # type: ignore[index]
    plain = [h.id for h in Searcher(embedder, store).search_text("dog + cat - grass")]
    assert cli(collection, capsys, "dog + cat - grass") == (0, plain)
    # one quoted text is that plain text query, in the collection's own mode
    quoted = [h.id for h in Searcher(embedder, store).search_text("a cat", SearchRequest(k=3))]
    assert cli(collection, capsys, '2*"a cat"', "-k", "3") == (0, quoted)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('-"a dog"', "every term of the composition is negative"),
        ('"a dog" - "a cat"', "sum to zero"),
        ("@no-such-item + \"a dog\"", "no stored item 'no-such-item'"),
        (f'"{OPPOSED_TEXT}" + @{OPPOSITE_ID}', "cancel each other out"),
        ('"a dog" + img:/no/such/file.jpg', "cannot read img:/no/such/file.jpg"),
        ('"a dog" "a cat"', "expected + or - between terms"),
        ('"a dog" + "a cat" --mode keyword', "searched by vector only"),
    ],
)
def test_cli_refuses_bad_compositions(
    collection: Collection, capsys: pytest.CaptureFixture[str], query: str, message: str
) -> None:
    query, *extra = query.split(" --mode ")
    code, err = cli(collection, capsys, query, *(["--mode", *extra] if extra else []))
    assert code == 2
    assert message in str(err)


@pytest.fixture(scope="module")
def client(collection: Collection) -> Iterator[TestClient]:
    with TestClient(create_app(collection.settings)) as test_client:
        wait_ready(test_client)
        yield test_client


def test_api_composed_search_json_and_multipart(
    collection: Collection, embedder: Embedder, store: VectorStore, client: TestClient
) -> None:
    text = embedder.embed_texts(["a dog", "grass"])
    stored = store.get([collection.ids[1]], with_vectors=True)[0].vector
    body = {"terms": [{"text": "a dog"}, {"image_id": collection.ids[1], "weight": 2},
                      {"text": "grass", "weight": -0.5}],
            "k": 3, "filter": {"label": "dog"}}
    vector = weighted((1, text[0]), (2, stored), (-0.5, text[1]))
    expected = expected_ids(store, vector, SearchRequest(k=3, expr='metadata["label"] == "dog"'))
    answer = client.post("/search/composed", json=body)
    assert answer.status_code == 200, answer.text
    assert [h["id"] for h in answer.json()["hits"]] == expected
    # an uploaded image term, by its part name
    image = collection.images[4]
    image_vec = embedder.embed_images([decode_image(image.read_bytes())])[0]
    request = {"terms": [{"image": "photo"}, {"text": "grass", "weight": -0.3}], "k": 4}
    answer = client.post("/search/composed", data={"request": json.dumps(request)},
                         files={"photo": ("p.jpg", image.read_bytes(), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert [h["id"] for h in answer.json()["hits"]] == expected_ids(
        store, weighted((1, image_vec), (-0.3, text[1])), SearchRequest(k=4))


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"terms": []}, 422, "no terms"),
        ({"terms": [{"text": "a dog", "weight": -1}]}, 422, "every term"),
        ({"terms": [{"text": "a dog"}, {"text": "a cat", "weight": -1}]}, 422, "sum to zero"),
        ({"terms": [{"image_id": "missing-id"}]}, 404, "no item 'missing-id'"),
        ({"terms": [{"text": OPPOSED_TEXT}, {"image_id": OPPOSITE_ID}]}, 422, "cancel"),
        ({"terms": [{"text": "a", "image_id": "b"}]}, 422, "exactly one of"),
        ({"terms": [{"image": "photo"}]}, 422, "names no file part"),
        ({"terms": [{"text": "a dog"}], "mode": "keyword"}, 422, "searched by vector only"),
    ],
)
def test_api_refuses_bad_compositions(
    client: TestClient, body: dict, status: int, message: str
) -> None:
    answer = client.post("/search/composed", json=body)
    assert answer.status_code == status, answer.text
    assert message in json.dumps(answer.json()["error"])


def test_api_composed_search_needs_json_or_multipart(client: TestClient) -> None:
    answer = client.post("/search/composed", content=b"terms",
                         headers={"content-type": "text/plain"})
    assert answer.status_code == 415
    answer = client.post("/search/composed", data={"k": "3"},
                         files={"x": ("a", b"1", "image/jpeg")})
    assert answer.status_code == 422
    assert "'request' text part" in answer.json()["error"]["message"]
