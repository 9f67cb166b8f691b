"""Limits every part of mmrag shares (defined once; stores, API and CLI import them)."""

from __future__ import annotations

MAX_TOPK = 16384  # Milvus: limit + offset of one search (and a query's batch) within 1..16384
