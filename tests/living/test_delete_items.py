"""Deleting items on a real Milvus Lite file: DELETE /items/{id}, POST /items/delete (a filter,
confirmed), and mmrag delete ID... | --filter; a filter that would delete everything without
the confirmation deletes nothing and says how many items it matches."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ingest.sync import run_sync
from mmrag.cli import main
from retrieval.api import create_app
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.types import Record
from tests.living.conftest import write_png

Rows = Callable[[], dict[str, Record]]


@pytest.fixture
def library(tmp_path: Path, settings: Settings, tiny_embedder: Embedder) -> dict[str, str]:
    """Five images synced into the collection (a/ holds three, b/ two); source -> id."""
    lib = tmp_path / "lib"
    for i in range(5):
        write_png(lib / ("a" if i < 3 else "b") / f"p{i}.png", 60 + i)
    components = build_components(settings)
    components._embedder = tiny_embedder
    try:
        run_sync(components, lib)
        return {r.source: r.id for b in components.store.iterate(100) for r in b}
    finally:
        components.close()


def test_api_deletes_one_item_and_a_confirmed_filter(
    settings: Settings, library: dict[str, str], read_rows: Rows
) -> None:
    key = "k3y-for-deletes"
    one = next(i for source, i in library.items() if source.endswith("/a/p0.png"))
    auth = {"X-API-Key": key}
    with TestClient(create_app(settings.model_copy(update={"api_key": key}))) as client:
        assert client.delete(f"/items/{one}").status_code == 401  # the key applies
        assert len(read_rows()) == 5
        deleted = client.delete(f"/items/{one}", headers=auth)
        assert deleted.status_code == 200, deleted.text
        assert deleted.json() == {"collection": "living", "deleted": 1, "matched": 1,
                                  "dry_run": False, "ids": [one]}
        assert client.get(f"/items/{one}", headers=auth).status_code == 404
        again = client.delete(f"/items/{one}", headers=auth)
        assert again.status_code == 404 and again.json()["error"]["type"] == "item_not_found"

        for body in ({}, {"filter": {}}, {"filter": None, "confirm": False}):
            refused = client.post("/items/delete", json=body, headers=auth)
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert error["type"] == "confirmation_required"
            assert "matches 4 item(s) (every item of the collection)" in error["message"]
            assert '"confirm": true' in error["message"] and error["details"] == {"matched": 4}
        b_only = {"filter": {"folder": "b"}}
        refused = client.post("/items/delete", json=b_only, headers=auth)
        assert refused.status_code == 422 and refused.json()["error"]["details"]["matched"] == 2
        counted = client.post("/items/delete", json={**b_only, "dry_run": True}, headers=auth)
        assert counted.json()["matched"] == 2 and counted.json()["deleted"] == 0
        bad = client.post("/items/delete", json={"filter": {"nope": 1}, "confirm": True},
                          headers=auth)
        assert bad.status_code == 422 and "unknown filter field 'nope'" in bad.text
        assert client.post("/items/delete", json={"confirm": "yes"},
                           headers=auth).status_code == 422  # strict: a boolean, not text
        assert len(read_rows()) == 4  # nothing above deleted anything
        done = client.post("/items/delete", json={**b_only, "confirm": True}, headers=auth)
        assert done.status_code == 200 and done.json()["deleted"] == 2
    assert sorted(r.metadata["folder"] for r in read_rows().values()) == ["a", "a"]


def test_cli_deletes_ids_and_asks_for_yes_before_a_filter_deletes_everything(
    cli_flags: list[str], library: dict[str, str], read_rows: Rows,
    capsys: pytest.CaptureFixture[str],
) -> None:
    one = next(i for source, i in library.items() if source.endswith("/a/p0.png"))
    assert len(read_rows()) == 5  # opened: the commands below share its Lite server
    assert main(["delete", one, "no-such-id", *cli_flags]) == 1
    captured = capsys.readouterr()
    assert "deleted 1 item(s) from 'living'" in captured.out
    assert "not found: no-such-id" in captured.err
    assert one not in read_rows()

    assert main(["delete", "--filter", "{}", *cli_flags]) == 2  # no terminal, no --yes
    err = capsys.readouterr().err
    assert "matches 4 item(s) (every item of the collection)" in err and "--yes" in err
    assert main(["delete", "--filter", '{"folder": "b"}', "--dry-run", *cli_flags]) == 0
    assert "would delete 2 item(s)" in capsys.readouterr().out
    assert main(["delete", *cli_flags]) == 2
    assert "give the ids to delete, or --filter JSON" in capsys.readouterr().err
    assert len(read_rows()) == 4

    assert main(["delete", "--filter", "{}", "--yes", "--json", *cli_flags]) == 0
    assert json.loads(capsys.readouterr().out)["deleted"] == 4
    assert read_rows() == {}
