"""Upsert call sizes: Milvus Lite and a server get their own measured byte budget."""

from __future__ import annotations

import pytest

from retrieval.stores import milvus_rows


def _rows(n: int) -> list[dict[str, object]]:
    return [{"id": f"r{i:04d}", "source": "/x.jpg", "caption": "c", "metadata": {"n": i}}
            for i in range(n)]


def test_local_and_server_budgets() -> None:
    assert milvus_rows.upsert_batch_bytes(True) == milvus_rows.BATCH_BYTES == 2 * 1024 * 1024
    assert milvus_rows.upsert_batch_bytes(False) == milvus_rows.SERVER_BATCH_BYTES
    assert milvus_rows.SERVER_BATCH_BYTES == 8 * 1024 * 1024  # Milvus caps a request at 64 MB


def test_budget_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(milvus_rows, "BATCH_BYTES", 123)
    monkeypatch.setattr(milvus_rows, "SERVER_BATCH_BYTES", 456)
    assert milvus_rows.upsert_batch_bytes(True) == 123
    assert milvus_rows.upsert_batch_bytes(False) == 456


@pytest.mark.parametrize("max_bytes", [None, 10_000, 100_000, 1])
def test_chunks_stay_within_the_budget(max_bytes: int | None) -> None:
    rows = _rows(500)
    dim = 512
    chunks = list(milvus_rows.chunks_by_size(rows, dim, max_bytes))
    assert [r for c in chunks for r in c] == rows  # every row once, in order
    limit = milvus_rows.BATCH_BYTES if max_bytes is None else max_bytes
    per_row = 4 * dim + 64  # the vector and overhead alone
    if max_bytes == 1:
        assert all(len(c) == 1 for c in chunks)  # a row over the budget still goes alone
    else:
        assert all(len(c) * per_row <= limit for c in chunks)
        assert len(chunks) >= len(rows) * per_row // limit
