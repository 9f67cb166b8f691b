"""Retrieval quality on labelled queries: recall@k, precision@5, MRR and nDCG@10, per task.

A queries file holds one query per line (JSONL) or row (CSV/TSV): a text ``query`` (text→image)
or an ``image`` path (image→image), and what is relevant to it: ``relevant`` (stored ids) and/or
``relevant_where`` (metadata equality, e.g. ``{"colour": "red", "shape": "circle"}``; every key
must match). Relative image paths resolve against the queries file's folder. An optional
``group`` (e.g. ``visual``, ``code``, ``mixed``) reports those queries apart.

Text queries are ranked by the chosen mode: ``vector`` (CLIP similarity, the default), ``keyword``
(BM25 over the collection's text index) or ``hybrid`` (both, fused by Milvus); image queries are
always ranked by vector. ``evaluate_modes`` runs the same queries in several modes.

Metrics, per query over its ranking of the top ``DEPTH`` (10) stored items, then averaged:

* recall@k = |relevant ∩ top k| / |relevant| (with one relevant item: hit@k);
* precision@5 = |relevant ∩ top 5| / 5;
* MRR = mean of 1 / rank of the first relevant item (0 when none is in the top 10: MRR@10);
* nDCG@10 with binary gains: sum(rel_i / log2(i + 1)) over ranks i ≤ 10, divided by the same sum
  for an ideal ranking (min(|relevant|, 10) relevant items first).

Relevant ids that are not stored are ignored (and reported as missing); a query left with
nothing relevant is skipped (and reported). An image query's own stored copy (stored under its
bytes' content id, or from its path) is left out of its ranking and of its relevant set unless
``keep_self``: finding a picture by itself says nothing. ``exact`` also ranks every stored
vector by brute force and reports the ANN recall@10 (the share of the exact top 10 that the
index returned, ties counted as hits) and the metrics of the exact ranking.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval.embedders.base import Embedder
from retrieval.errors import ConfigError, ImageDecodeError
from retrieval.ids import content_id
from retrieval.imaging import decode_image
from retrieval.search import (
    HYBRID,
    KEYWORD,
    VECTOR,
    Searcher,
    SearchRequest,
    plain_search,
    resolve_mode,
)
from retrieval.stores.base import Fusion, VectorStore
from retrieval.types import Hit

K_VALUES = (1, 5, 10)
PRECISION_AT = 5
DEPTH = 10
TIE_TOLERANCE = 1e-5
SCAN_BATCH = 1000
TASKS = {"text": "text→image", "image": "image→image"}
METRIC_NAMES = (*(f"recall@{k}" for k in K_VALUES), f"precision@{PRECISION_AT}", "mrr",
                f"ndcg@{DEPTH}")


# ----- metrics on one ranking -------------------------------------------------------------


def recall_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the relevant ids found in the top k (0 when nothing is relevant)."""
    if not relevant:
        return 0.0
    return len(set(ranking[:k]) & set(relevant)) / len(relevant)


def precision_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Share of the top k slots holding a relevant id (missing slots count as misses)."""
    return len(set(ranking[:k]) & set(relevant)) / k


def reciprocal_rank(ranking: Sequence[str], relevant: Collection[str]) -> float:
    """1 / rank of the first relevant id in the ranking, or 0."""
    for rank, item in enumerate(ranking, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranking: Sequence[str], relevant: Collection[str], k: int) -> float:
    """Normalised discounted cumulative gain at k with binary gains (0 when nothing is relevant)."""
    ideal = sum(1.0 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    if ideal == 0.0:
        return 0.0
    gained = sum(
        1.0 / math.log2(i + 1) for i, item in enumerate(ranking[:k], start=1) if item in relevant
    )
    return gained / ideal


def ranking_metrics(ranking: Sequence[str], relevant: Collection[str]) -> dict[str, float]:
    """Every reported metric of one ranking, keyed as in METRIC_NAMES."""
    metrics = {f"recall@{k}": recall_at_k(ranking, relevant, k) for k in K_VALUES}
    metrics[f"precision@{PRECISION_AT}"] = precision_at_k(ranking, relevant, PRECISION_AT)
    metrics["mrr"] = reciprocal_rank(ranking[:DEPTH], relevant)
    metrics[f"ndcg@{DEPTH}"] = ndcg_at_k(ranking, relevant, DEPTH)
    return metrics


def ann_recall(ann_scores: Sequence[float], exact_scores: Sequence[float]) -> float:
    """Share of the exact top list the ANN list matches; an ANN hit scoring ≥ the last exact
    score (minus TIE_TOLERANCE) counts, so ties broken differently are not misses.

    ``ann_scores`` are the exact similarities of the ANN's hits, ``exact_scores`` the brute-force
    top similarities, best first.
    """
    if not exact_scores:
        return 1.0
    floor = exact_scores[-1] - TIE_TOLERANCE
    found = sum(1 for score in ann_scores[: len(exact_scores)] if score >= floor)
    return found / len(exact_scores)


# ----- queries file -------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalQuery:
    """One labelled query: a text or an image file, and what counts as relevant to it."""

    qid: str
    text: str | None = None
    image: Path | None = None
    relevant: frozenset[str] = frozenset()
    where: Mapping[str, Any] | None = None
    group: str | None = None  # reported apart (e.g. visual, code, mixed)

    @property
    def kind(self) -> str:
        """'text' or 'image'."""
        return "text" if self.text is not None else "image"

    @property
    def label(self) -> str:
        """The query as shown in reports."""
        return self.text if self.text is not None else str(self.image)


def load_queries(path: str | Path) -> list[EvalQuery]:
    """Read a JSONL (any other suffix) or CSV/TSV queries file; ConfigError on bad lines."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"queries file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read queries file {path}: {exc}") from exc
    suffix = path.suffix.lower()
    rows = _delimited_rows(text, suffix) if suffix in (".csv", ".tsv") else _jsonl_rows(text)
    queries = [_query(row, line, path) for line, row in rows]
    if not queries:
        raise ConfigError(f"queries file {path} holds no query")
    seen: set[str] = set()
    for query in queries:
        if query.qid in seen:
            raise ConfigError(f"{path}: query id {query.qid!r} appears twice")
        seen.add(query.qid)
    return queries


def _jsonl_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) of every non-blank JSONL line."""
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"line {number} is not JSON: {exc.msg}") from exc
        if not isinstance(value, dict):
            raise ConfigError(f"line {number} is not a JSON object")
        rows.append((number, value))
    return rows


def _delimited_rows(text: str, suffix: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) of a CSV/TSV with columns query|image, relevant, relevant_where, id.

    ``relevant`` holds ids separated by ``|`` or whitespace; ``relevant_where`` is JSON text.
    """
    reader = csv.DictReader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ",")
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, raw in enumerate(reader, start=2):
        row: dict[str, Any] = {
            str(k).strip().lower(): (v or "").strip() for k, v in raw.items() if k is not None
        }
        row = {k: v for k, v in row.items() if v}
        if "relevant" in row:
            row["relevant"] = row["relevant"].replace("|", " ").split()
        if "relevant_where" in row:
            try:
                row["relevant_where"] = json.loads(row["relevant_where"])
            except json.JSONDecodeError as exc:
                raise ConfigError(f"line {number}: relevant_where is not JSON: {exc.msg}") from exc
        rows.append((number, row))
    return rows


def _query(row: Mapping[str, Any], line: int, path: Path) -> EvalQuery:
    """One checked EvalQuery from a parsed row."""
    text, image = row.get("query"), row.get("image")
    if (text is None) == (image is None):
        raise ConfigError(f"{path} line {line}: give exactly one of 'query' and 'image'")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise ConfigError(f"{path} line {line}: 'query' must be non-empty text")
    if image is not None and (not isinstance(image, str) or not image.strip()):
        raise ConfigError(f"{path} line {line}: 'image' must be a file path")
    relevant = row.get("relevant", [])
    if isinstance(relevant, str):
        relevant = [relevant]
    if not isinstance(relevant, list) or not all(isinstance(i, str) for i in relevant):
        raise ConfigError(f"{path} line {line}: 'relevant' must be a list of ids")
    where = row.get("relevant_where")
    if where is not None and (not isinstance(where, dict) or not where):
        raise ConfigError(f"{path} line {line}: 'relevant_where' must be a non-empty object")
    if not relevant and where is None:
        raise ConfigError(f"{path} line {line}: give 'relevant' ids and/or 'relevant_where'")
    group = row.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip()):
        raise ConfigError(f"{path} line {line}: 'group' must be a non-empty name")
    image_path = None
    if image is not None:
        image_path = Path(image).expanduser()
        if not image_path.is_absolute():
            image_path = path.parent / image_path
    return EvalQuery(
        qid=str(row.get("id", f"line{line}")),
        text=text.strip() if text is not None else None,
        image=image_path,
        relevant=frozenset(relevant),
        where=where,
        group=group.strip() if isinstance(group, str) else None,
    )


# ----- evaluation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions:
    """How to evaluate: brute-force comparison, and whether an image query may find itself."""

    exact: bool = False
    keep_self: bool = False
    mode: str = VECTOR  # how text queries are ranked: vector, keyword or hybrid
    fusion: Fusion = field(default_factory=Fusion)


@dataclass(frozen=True)
class Ranked:
    """One ranked stored item: id, similarity and source."""

    id: str
    score: float
    source: str = ""


@dataclass
class QueryResult:
    """One query's relevant set, rankings and metrics."""

    query: EvalQuery
    relevant: frozenset[str]
    ranking: list[Ranked]
    metrics: dict[str, float]
    exact_ranking: list[Ranked] | None = None
    exact_metrics: dict[str, float] | None = None
    ann_recall: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready result."""
        out: dict[str, Any] = {
            "id": self.query.qid,
            "task": TASKS[self.query.kind],
            "query": self.query.label,
            "relevant": len(self.relevant),
            "ranking": [r.id for r in self.ranking],
            "metrics": _rounded(self.metrics),
        }
        if self.exact_metrics is not None:
            out["exact_metrics"] = _rounded(self.exact_metrics)
            out["ann_recall@10"] = round(float(self.ann_recall or 0.0), 4)
        return out


@dataclass(frozen=True)
class TaskSummary:
    """Mean metrics of one task's queries (and of their exact rankings, with --exact)."""

    task: str
    queries: int
    metrics: dict[str, float]
    exact_metrics: dict[str, float] | None = None
    ann_recall: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        out: dict[str, Any] = {
            "task": self.task, "queries": self.queries, "metrics": _rounded(self.metrics)
        }
        if self.exact_metrics is not None:
            out["exact_metrics"] = _rounded(self.exact_metrics)
            out["ann_recall@10"] = round(float(self.ann_recall or 0.0), 4)
        return out


@dataclass
class EvalReport:
    """Per-task summaries, per-query results and the queries skipped (nothing relevant)."""

    collection: str
    items: int
    model_id: str
    index_type: str
    tasks: list[TaskSummary]
    results: list[QueryResult]
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    exact: bool = False
    mode: str = VECTOR

    def as_dict(self, per_query: bool = False) -> dict[str, Any]:
        """JSON-ready report."""
        out: dict[str, Any] = {
            "collection": self.collection,
            "items": self.items,
            "model": self.model_id,
            "index": self.index_type,
            "mode": self.mode,
            "depth": DEPTH,
            "exact": self.exact,
            "tasks": [t.as_dict() for t in self.tasks],
            "skipped": list(self.skipped),
            "missing_relevant_ids": list(self.missing),
        }
        if per_query:
            out["queries"] = [r.as_dict() for r in self.results]
        return out


def _rounded(metrics: Mapping[str, float]) -> dict[str, float]:
    return {name: round(float(value), 4) for name, value in metrics.items()}


@dataclass
class _Scan:
    """What one pass over the stored records found: relevant ids per query, sources, top lists."""

    matches: dict[int, set[str]]
    sources: dict[str, str]
    top: list[list[Ranked]]
    items: int = 0


def evaluate(
    embedder: Embedder,
    store: VectorStore,
    queries: Sequence[EvalQuery],
    options: EvalOptions | None = None,
) -> EvalReport:
    """Run every query against the collection and score its rankings (see the module docstring)."""
    opts = options or EvalOptions()
    Searcher(embedder, store).check_model()
    info = store.info()
    if info.count == 0:
        raise ConfigError(f"collection {info.name!r} is empty: ingest something first")
    if opts.mode != VECTOR:
        if opts.exact:
            raise ConfigError(
                "--exact compares the vector index with brute force; use it with mode vector"
            )
        resolve_mode(store, SearchRequest(mode=opts.mode), text=True)  # the text index is there
    vectors, selves = _embed_queries(embedder, queries)
    extra = 0 if opts.keep_self else 2
    depth = min(DEPTH + extra, info.count)
    hits = plain_search(store, vectors, SearchRequest(k=depth), with_vectors=opts.exact)
    if opts.mode != VECTOR:
        _rank_texts(store, queries, vectors, hits, depth, opts)
    wheres = [q.where for q in queries]
    scan = _scan(store, vectors if opts.exact else None, depth, wheres)
    named = sorted({i for q in queries for i in q.relevant})
    stored = store.existing_ids(named) if named else set()
    results: list[QueryResult] = []
    skipped: list[str] = []
    for i, query in enumerate(queries):
        excluded = set() if opts.keep_self else _self_ids(selves[i], scan.sources, hits[i])
        labelled = set(query.relevant) & stored
        relevant = frozenset((labelled | scan.matches.get(i, set())) - excluded)
        if not relevant:
            skipped.append(query.qid)
            continue
        ranking = [Ranked(h.id, h.score, h.source) for h in hits[i] if h.id not in excluded]
        ranking = ranking[:DEPTH]
        result = QueryResult(
            query, relevant, ranking, ranking_metrics([r.id for r in ranking], relevant)
        )
        if opts.exact:
            exact = [r for r in scan.top[i] if r.id not in excluded][:DEPTH]
            true_scores = [
                float(np.dot(vectors[i], h.vector))
                for h in hits[i]
                if h.id not in excluded and h.vector is not None
            ][:DEPTH]
            result.exact_ranking = exact
            result.exact_metrics = ranking_metrics([r.id for r in exact], relevant)
            result.ann_recall = ann_recall(true_scores, [r.score for r in exact])
        results.append(result)
    return EvalReport(
        collection=info.name,
        items=info.count,
        model_id=info.model_id,
        index_type=info.index_type,
        tasks=summarise(results),
        results=results,
        skipped=skipped,
        missing=[i for i in named if i not in stored],
        exact=opts.exact,
        mode=opts.mode,
    )


def evaluate_modes(
    embedder: Embedder,
    store: VectorStore,
    queries: Sequence[EvalQuery],
    modes: Sequence[str],
    options: EvalOptions | None = None,
) -> list[EvalReport]:
    """The same queries evaluated in each mode, in order (see ``evaluate``)."""
    opts = options or EvalOptions()
    return [evaluate(embedder, store, queries, replace(opts, mode=mode)) for mode in modes]


def _rank_texts(
    store: VectorStore,
    queries: Sequence[EvalQuery],
    vectors: np.ndarray,
    hits: list[list[Hit]],
    depth: int,
    opts: EvalOptions,
) -> None:
    """Replace the text queries' vector rankings with keyword or hybrid ones (in place)."""
    rows = [i for i, q in enumerate(queries) if q.text is not None]
    if not rows:
        return
    texts = [str(queries[i].text) for i in rows]
    if opts.mode == KEYWORD:
        ranked = store.keyword_search(texts, depth)
    elif opts.mode == HYBRID:
        ranked = store.hybrid_search(vectors[rows], texts, depth, fusion=opts.fusion)
    else:
        raise ConfigError(f"mode must be vector, keyword or hybrid, got {opts.mode!r}")
    for i, found in zip(rows, ranked, strict=True):
        hits[i] = found


def summarise(results: Sequence[QueryResult]) -> list[TaskSummary]:
    """Mean metrics per task (and query group, in first-seen order), text→image first."""
    summaries = []
    for kind, task_name in TASKS.items():
        names = list(dict.fromkeys(r.query.group for r in results if r.query.kind == kind))
        for name in names:
            group = [r for r in results if r.query.kind == kind and r.query.group == name]
            task = task_name if name is None else f"{task_name} ({name})"
            summaries.append(_summary(task, group))
    return summaries


def _summary(task: str, group: Sequence[QueryResult]) -> TaskSummary:
    """Mean metrics of one task's (or group's) results."""
    exact = [r.exact_metrics for r in group if r.exact_metrics is not None]
    recalls = [r.ann_recall for r in group if r.ann_recall is not None]
    return TaskSummary(
        task=task,
        queries=len(group),
        metrics=_mean([r.metrics for r in group]),
        exact_metrics=_mean(exact) if exact else None,
        ann_recall=float(np.mean(recalls)) if recalls else None,
    )


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {name: float(np.mean([row[name] for row in rows])) for name in METRIC_NAMES}


@dataclass(frozen=True)
class _Self:
    """How to recognise an image query's own stored copy: content id and resolved path."""

    id: str = ""
    source: str = ""


def _embed_queries(
    embedder: Embedder, queries: Sequence[EvalQuery]
) -> tuple[np.ndarray, list[_Self]]:
    """Unit vectors of every query, in order, and the self-identity of image queries."""
    vectors = np.zeros((len(queries), embedder.dim), dtype=np.float32)
    selves = [_Self() for _ in queries]
    texts = [(i, q.text) for i, q in enumerate(queries) if q.text is not None]
    if texts:
        vectors[[i for i, _ in texts]] = embedder.embed_texts([t for _, t in texts])
    images = [(i, q.image) for i, q in enumerate(queries) if q.image is not None]
    for start in range(0, len(images), embedder.batch_size):
        chunk = images[start : start + embedder.batch_size]
        decoded = []
        for i, image in chunk:
            data = _read_image(image)
            selves[i] = _Self(content_id(data), str(image.resolve()))
            try:
                decoded.append(decode_image(data))
            except ImageDecodeError as exc:
                raise ConfigError(f"query image {str(image)!r}: {exc}") from exc
        vectors[[i for i, _ in chunk]] = embedder.embed_images(decoded)
    return vectors, selves


def _read_image(path: Path) -> bytes:
    """A query image's bytes (ConfigError when unreadable)."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read query image {str(path)!r}: {exc.strerror}") from exc


def _self_ids(me: _Self, sources: Mapping[str, str], hits: Iterable[Any]) -> set[str]:
    """Stored ids that are the query image itself (same content id or same source path)."""
    if not me.id:
        return set()
    found = {me.id}
    found.update(h.id for h in hits if me.source and h.source == me.source)
    found.update(i for i, source in sources.items() if me.source and source == me.source)
    return found


def _scan(
    store: VectorStore,
    vectors: np.ndarray | None,
    depth: int,
    wheres: Sequence[Mapping[str, Any] | None],
) -> _Scan:
    """One pass over the collection when needed: metadata matches and/or exact top lists."""
    scan = _Scan(matches={}, sources={}, top=[[] for _ in wheres])
    wanted = [(i, w) for i, w in enumerate(wheres) if w]
    if vectors is None and not wanted:
        return scan
    best_scores = np.full((len(wheres), 0), -np.inf, dtype=np.float32)
    best_ids: list[list[str]] = [[] for _ in wheres]
    for batch in store.iterate(SCAN_BATCH, with_vectors=vectors is not None):
        scan.items += len(batch)
        for record in batch:
            scan.sources[record.id] = record.source
        for i, where in wanted:
            found = {r.id for r in batch if _matches(r.metadata, where)}
            if found:
                scan.matches.setdefault(i, set()).update(found)
        if vectors is not None:
            matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in batch])
            scores = np.concatenate([best_scores, vectors @ matrix.T], axis=1)
            ids = [row + [r.id for r in batch] for row in best_ids]
            keep = min(depth, scores.shape[1])
            order = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
            best_scores = np.take_along_axis(scores, order, axis=1)
            best_ids = [[row[j] for j in order[n]] for n, row in enumerate(ids)]
    if vectors is not None:
        scan.top = [
            [Ranked(i, float(s), scan.sources.get(i, "")) for i, s in zip(ids, row, strict=True)]
            for ids, row in zip(best_ids, best_scores, strict=True)
        ]
    return scan


def _matches(metadata: Mapping[str, Any], where: Mapping[str, Any]) -> bool:
    """Whether every key of ``where`` equals the record's metadata value."""
    return all(key in metadata and metadata[key] == value for key, value in where.items())

