"""`mmrag search` --filter, --min-score, --diversity and --offset mean what the API's fields mean.

The CLI runs as users run it (``mmrag.cli.main``) over the API tests' shared Milvus Lite
collection (tiny model); its hits are compared with ``POST /search`` for the same options, and
its errors carry the API's messages.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mmrag.cli import main
from tests.api.helpers import ApiData, error_of


def flags(api_data: ApiData) -> list[str]:
    settings = api_data.settings
    return [
        "--uri", settings.uri, "--collection", settings.collection, "--model", settings.model,
        "--pretrained", "", "--checkpoint", str(settings.checkpoint), "--device", "cpu",
    ]


def cli_hits(api_data: ApiData, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict]:
    assert main(["search", "a photo", "--json", *args, *flags(api_data)]) == 0
    return json.loads(capsys.readouterr().out)


def cli_error(api_data: ApiData, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["search", "a photo", "--json", *args, *flags(api_data)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def api_ids(client: TestClient, **options: Any) -> list[str]:
    response = client.post("/search", json={"query": "a photo", **options})
    assert response.status_code == 200, response.text
    return [hit["id"] for hit in response.json()["hits"]]


def test_filter_matches_the_api(
    client: TestClient, api_data: ApiData, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = {"label": {"in": ["dog", "cat"]}, "year": {"gte": 2018}}
    hits = cli_hits(api_data, capsys, "-k", "20", "--filter", json.dumps(spec))
    assert hits and all(h["metadata"]["label"] in ("dog", "cat") for h in hits)
    assert all(h["metadata"]["year"] >= 2018 for h in hits)
    assert [h["id"] for h in hits] == api_ids(client, k=20, filter=spec)


def test_offset_min_score_and_diversity_match_the_api(
    client: TestClient, api_data: ApiData, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = [h["id"] for h in cli_hits(api_data, capsys, "-k", "8")]
    page = [h["id"] for h in cli_hits(api_data, capsys, "-k", "4", "--offset", "4")]
    assert page == whole[4:8] == api_ids(client, k=4, offset=4)

    floor = cli_hits(api_data, capsys, "-k", "17", "--min-score", "0.1")
    assert all(h["score"] >= 0.1 for h in floor)
    assert [h["id"] for h in floor] == api_ids(client, k=17, min_score=0.1)

    spread = [h["id"] for h in cli_hits(api_data, capsys, "-k", "5", "--diversity", "0.7")]
    assert spread == api_ids(client, k=5, diversity=0.7)
    assert len(spread) == 5 and spread != whole[:5]


@pytest.mark.parametrize(
    ("args", "body"),
    [
        (["--filter", '{"colour": "red"}'], {"filter": {"colour": "red"}}),
        (["--filter", '{"label": {"near": "dog"}}'], {"filter": {"label": {"near": "dog"}}}),
        (["--filter", '{"1abc": 1}'], {"filter": {"1abc": 1}}),
        (["-k", "1000", "--offset", "16000"], {"k": 1000, "offset": 16000}),
        (["--offset", "-1"], {"offset": -1}),
        (["--min-score", "2"], {"min_score": 2}),
        (["--diversity", "1.5"], {"diversity": 1.5}),
    ],
)
def test_bad_flags_fail_with_the_apis_messages(
    client: TestClient,
    api_data: ApiData,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    body: dict[str, Any],
) -> None:
    response = client.post("/search", json={"query": "a photo", **body})
    assert response.status_code == 422
    message = error_of(response)["message"]
    if ":" in message and message.split(":", 1)[0] in body:  # "<field>: <pydantic message>"
        field, message = message.split(": ", 1)
        message = f"--{field.replace('_', '-')}: {message}"
    elif "filter" in body:
        message = f"--filter: {message}"
    err = cli_error(api_data, capsys, *args)
    assert err.strip() == f"mmrag search: error: {message}"


def test_filter_that_is_not_json_is_refused(
    api_data: ApiData, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "--filter is not JSON" in cli_error(api_data, capsys, "--filter", "{label: dog}")
    err = cli_error(api_data, capsys, "--filter", '["dog"]')
    assert "--filter: filter must be a JSON object of field: condition" in err
