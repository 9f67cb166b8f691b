"""Near-duplicate images: Milvus range search from every stored image, grouped by union-find.

The collection is read once, in batches (``VectorStore.iterate``); each batch's vectors are one
range search (``VectorStore.range_search``: the neighbours scoring above the threshold). Every
pair found joins two groups; a group is every image linked to another by a chain of such pairs.
Groups come largest first, then by their first id, so pages are stable between calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retrieval.errors import ConfigError
from retrieval.stores.base import VectorStore
from retrieval.stores.expr import identifier, literal
from retrieval.types import Modality

DEFAULT_THRESHOLD = 0.95
SCAN_BATCH = 256  # stored rows per iterate call, and query vectors per range search
NEIGHBOURS = 64  # neighbours per image asked from the range search
EXACT_RADIUS = 1.0 - 1e-6  # threshold 1.0: identical vectors (range search's radius is exclusive)
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class Member:
    """One image of a duplicate group."""

    id: str
    source: str
    caption: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Images linked by pairs scoring at least the threshold, and the range of those scores."""

    members: tuple[Member, ...]  # by id
    min_score: float  # the weakest pair that joined the group
    max_score: float


@dataclass(frozen=True)
class DuplicatePage:
    """One page of groups, with the totals of the whole scan."""

    groups: list[DuplicateGroup]
    total_groups: int
    total_images: int  # images in any group
    scanned: int  # images searched
    page: int
    page_size: int
    threshold: float


def check_threshold(threshold: float) -> float:
    """The threshold, or a ConfigError unless it is within (0, 1]."""
    if not math.isfinite(threshold) or not 0.0 < threshold <= 1.0:
        raise ConfigError(
            f"threshold must be within (0, 1] (cosine similarity; 0.95 finds resized and "
            f"recompressed copies), got {threshold}"
        )
    return threshold


def check_paging(page: int, page_size: int) -> None:
    """A ConfigError unless page >= 1 and page_size within 1..MAX_PAGE_SIZE."""
    if page < 1:
        raise ConfigError(f"page must be 1 or more, got {page}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ConfigError(f"page size must be within 1..{MAX_PAGE_SIZE}, got {page_size}")


class _UnionFind:
    """Disjoint sets of ids (path halving, union by size)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}
        self.size: dict[str, int] = {}

    def find(self, item: str) -> str:
        parent = self.parent.setdefault(item, item)
        self.size.setdefault(item, 1)
        while parent != item:
            grand = self.parent[parent]
            self.parent[item] = grand
            item, parent = grand, self.parent[grand]
        return item

    def union(self, a: str, b: str) -> str:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return ra
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return ra


def find_groups(
    store: VectorStore,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    batch_size: int = SCAN_BATCH,
    neighbours: int = NEIGHBOURS,
) -> tuple[list[DuplicateGroup], int]:
    """Every group of near-identical images in the store, ordered; and how many were scanned."""
    check_threshold(threshold)
    radius = min(threshold, EXACT_RADIUS)
    images_only = f"{identifier('modality')} == {literal(Modality.IMAGE.value)}"
    sets = _UnionFind()
    members: dict[str, Member] = {}
    pair_scores: dict[tuple[str, str], float] = {}
    scanned = 0
    for batch in store.iterate(batch_size, with_vectors=True):
        rows = [r for r in batch if r.modality == Modality.IMAGE and r.vector is not None
                and np.asarray(r.vector).size]
        if not rows:
            continue
        scanned += len(rows)
        matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in rows])
        found = store.range_search(matrix, radius, limit=neighbours, expr=images_only)
        for row, hits in zip(rows, found, strict=True):
            for hit in hits:
                if hit.id == row.id or hit.score < radius:
                    continue
                members.setdefault(row.id, Member(row.id, row.source, row.caption))
                members.setdefault(hit.id, Member(hit.id, hit.source, hit.caption))
                pair = (row.id, hit.id) if row.id < hit.id else (hit.id, row.id)
                pair_scores[pair] = max(pair_scores.get(pair, -1.0), float(hit.score))
                sets.union(row.id, hit.id)
    by_root: dict[str, list[str]] = {}
    for item in members:
        by_root.setdefault(sets.find(item), []).append(item)
    scores: dict[str, list[float]] = {}
    for (a, _), score in pair_scores.items():
        scores.setdefault(sets.find(a), []).append(score)
    groups = [
        DuplicateGroup(
            members=tuple(members[i] for i in sorted(ids)),
            min_score=min(scores[root]),
            max_score=max(scores[root]),
        )
        for root, ids in by_root.items()
    ]
    groups.sort(key=lambda g: (-len(g.members), g.members[0].id))
    return groups, scanned


def duplicate_page(
    store: VectorStore,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    page: int = 1,
    page_size: int = 20,
) -> DuplicatePage:
    """One page of the store's duplicate groups (the whole collection is scanned per call)."""
    check_threshold(threshold)
    check_paging(page, page_size)
    groups, scanned = find_groups(store, threshold)
    start = (page - 1) * page_size
    return DuplicatePage(
        groups=groups[start : start + page_size],
        total_groups=len(groups),
        total_images=sum(len(g.members) for g in groups),
        scanned=scanned,
        page=page,
        page_size=page_size,
        threshold=threshold,
    )
