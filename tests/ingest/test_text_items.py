"""Text documents beside images (#18.1): folder and manifest documents become passage rows.

Real Milvus Lite (and once the embedded Milvus server) and the tiny model: passages fit the
text context and point back to their document; a rerun adds nothing; an edited document
replaces its passages; non-UTF-8 files are decoded with replacements and named in the summary;
empty files are rejects with a reason.
"""

from __future__ import annotations

import csv
import itertools
import time
from pathlib import Path

import numpy as np

from ingest import IngestOptions, run_ingest
from ingest.rejects import RejectsFile
from ingest.sources import open_source
from retrieval.components import Components, build_components
from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.filters import with_modality
from retrieval.text_rows import passage_id, text_budget
from retrieval.types import Modality, Record
from tests.ingest.helpers import stored_records
from tests.support.milvus_server import EmbeddedServer

OPTIONS = IngestOptions(batch_size=8, workers=2, fetch_workers=2, insert_batch_size=16,
                        dedup_batch_size=16)
SENTENCE = "The quick brown fox number {n} jumps over the lazy dog near the river bank."


def long_document(sentences: int, start: int = 0) -> str:
    """Two paragraphs of numbered sentences (several passages at a 75-token budget)."""
    lines = [SENTENCE.format(n=n) for n in range(start, start + sentences)]
    half = len(lines) // 2
    return " ".join(lines[:half]) + "\n\n" + " ".join(lines[half:]) + "\n"


def passages_of(records: list[Record], name: str) -> list[Record]:
    """The passage rows of one document, in passage order."""
    rows = [r for r in records if r.modality is Modality.TEXT and r.source.endswith(name)]
    return sorted(rows, key=lambda r: int(r.metadata["passage"]))


def test_folder_documents_become_passages_that_a_rerun_keeps_and_an_edit_replaces(
    components: Components, make_image_files, tiny_embedder: Embedder, tmp_path: Path
) -> None:
    images = make_image_files(3)
    folder = images[0].parent
    notes = folder / "notes.md"
    notes.write_text("# Trip\n\n" + long_document(12), encoding="utf-8")
    (folder / "short.txt").write_text("A red circle on a white background.\n", encoding="utf-8")
    (folder / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me on the table.".encode("latin-1"))
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("  \n\n \t\n", encoding="utf-8")
    rejects = RejectsFile(tmp_path / "rejects.jsonl")
    summary = run_ingest(components, open_source(folder), OPTIONS, rejects=rejects)
    rejects.close()

    records = stored_records(components.store)
    passages = passages_of(records, "notes.md")
    budget = text_budget(tiny_embedder)
    assert len(passages) >= 3
    assert summary.ingested == 3 + len(passages) + 2 and summary.rejected == 2
    assert {r.reason for r in summary.rejects} == {
        "empty file (0 bytes)", "the document has no text (only whitespace)"
    }
    text = notes.read_text(encoding="utf-8")
    for index, row in enumerate(passages):
        meta = row.metadata
        assert meta["document"] == str(notes) and meta["passages"] == len(passages)
        assert meta["passage"] == index and meta["name"] == "notes.md"
        assert budget.count(row.caption) <= budget.tokens
        assert row.caption == " ".join(text[meta["char_start"]:meta["char_end"]].split())
        assert row.id == passage_id(str(notes), meta["doc_id"], index)
    # consecutive passages overlap a little, and together they hold every word
    assert all(a.metadata["char_end"] > b.metadata["char_start"]
               for a, b in itertools.pairwise(passages))
    assert set(" ".join(r.caption for r in passages).split()) == set(text.split())
    # a passage vector is the text tower's embedding of its text
    stored = components.store.get([passages[0].id], with_vectors=True)[0]
    assert np.allclose(stored.vector, tiny_embedder.embed_texts([passages[0].caption])[0],
                       atol=1e-5)
    assert summary.text_recoded == 1 and "latin1.txt" in summary.recoded[0]
    latin = passages_of(records, "latin1.txt")
    assert len(latin) == 1 and latin[0].caption == "Caf\ufffd cr\ufffdme on the table."

    again = run_ingest(components, open_source(folder), OPTIONS)
    assert (again.ingested, again.passages_removed) == (0, 0)
    assert again.duplicates == summary.ingested
    assert components.store.count() == len(records)

    notes.write_text("# Trip, edited\n\n" + long_document(4, start=100), encoding="utf-8")
    edited = run_ingest(components, open_source(folder), OPTIONS)
    after = stored_records(components.store)
    new_passages = passages_of(after, "notes.md")
    assert edited.passages_removed == len(passages)
    assert edited.ingested == len(new_passages) >= 1
    assert {r.id for r in new_passages}.isdisjoint(r.id for r in passages)
    assert "fox number 100" in new_passages[0].caption
    assert len(after) == len(records) - len(passages) + len(new_passages)
    assert sum(r.modality is Modality.IMAGE for r in after) == 3


def test_manifest_text_rows_are_documents_named_by_their_id(
    components: Components, make_image_files, tmp_path: Path
) -> None:
    image = make_image_files(1)[0]
    manifest = tmp_path / "catalogue.csv"

    def write(rows: list[dict[str, str]]) -> None:
        with manifest.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["id", "path", "text", "caption", "sku"])
            writer.writeheader()
            writer.writerows(rows)

    write([
        {"id": "img-1", "path": str(image), "text": "", "caption": "a photo", "sku": "R-1"},
        {"id": "doc-1", "path": "", "text": "A red circle on a white background.",
         "caption": "Circle card", "sku": "R-4821"},
        {"id": "", "path": "", "text": "A blue square, no id.", "caption": "", "sku": "B-2"},
        {"id": "doc-2", "path": "", "text": "   ", "caption": "", "sku": ""},
        {"id": "doc-1", "path": "", "text": "Other text, same id.", "caption": "", "sku": ""},
    ])
    summary = run_ingest(components, open_source(manifest), OPTIONS)
    assert (summary.ingested, summary.rejected) == (3, 2)
    reasons = {r.stage: r.reason for r in summary.rejects}
    assert reasons["manifest"] == "row 4 has an empty path/url and no text"
    assert reasons["conflict"].startswith("document 'doc-1' is repeated with other text")
    records = {r.caption: r for r in stored_records(components.store)}
    card = records["A red circle on a white background."]
    assert card.modality is Modality.TEXT and card.source == f"{manifest}#row=2"
    assert card.metadata["document"] == "doc-1" and card.metadata["title"] == "Circle card"
    assert card.metadata["sku"] == "R-4821"
    assert records["a photo"].modality is Modality.IMAGE

    write([{"id": "doc-1", "path": "", "text": "A green triangle now.", "caption": "", "sku": ""}])
    edited = run_ingest(components, open_source(manifest), OPTIONS)
    assert (edited.ingested, edited.passages_removed) == (1, 1)
    captions = {r.caption for r in stored_records(components.store)}
    assert "A green triangle now." in captions
    assert "A red circle on a white background." not in captions


def test_text_rows_on_the_embedded_milvus_server(
    milvus_server: EmbeddedServer, settings: Settings, tiny_embedder: Embedder,
    make_image_files, tmp_path: Path,
) -> None:
    """Once on a Milvus server (2.3): passages written by upsert, an edited document's old
    passages removed by filter (the rerun of an unchanged one is covered on Lite above), and
    the modality filter."""
    server = settings.model_copy(update={"uri": milvus_server.uri,
                                         "collection": f"text_{time.monotonic_ns()}"})
    folder = make_image_files(2)[0].parent
    notes = folder / "notes.txt"
    notes.write_text(long_document(6), encoding="utf-8")
    components = build_components(server)
    components._embedder = tiny_embedder
    try:
        first = run_ingest(components, open_source(folder), OPTIONS)
        passages = first.ingested - 2
        assert passages >= 2 and first.rejected == 0
        notes.write_text("A single short note now.", encoding="utf-8")
        edited = run_ingest(components, open_source(folder), OPTIONS)
        assert (edited.ingested, edited.passages_removed) == (1, passages)
        store = components.store
        query = tiny_embedder.embed_texts(["a note"])
        texts = store.search(query, k=10, expr=with_modality(None, "text"))[0]
        assert [h.caption for h in texts] == ["A single short note now."]
        images = store.search(query, k=10, expr=with_modality(None, "image"))[0]
        assert len(images) == 2 and {h.modality for h in images} == {Modality.IMAGE}
        store.drop()
    finally:
        components.close()
