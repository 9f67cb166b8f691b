"""Prometheus metrics written by hand (text exposition format 0.0.4), thread-safe."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    """A label value escaped for the text format."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    """``{a="x",b="y"}`` (empty when there are no labels)."""
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    """A sample value as Prometheus prints it."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


@dataclass
class _Metric:
    """Shared parts of every metric: name, help, label names and a lock."""

    name: str
    help: str
    label_names: tuple[str, ...] = ()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _key(self, labels: Sequence[str]) -> LabelValues:
        if len(labels) != len(self.label_names):
            raise ValueError(f"{self.name} takes labels {self.label_names}")
        return tuple(str(v) for v in labels)

    def header(self, kind: str) -> list[str]:
        """The HELP and TYPE lines."""
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {kind}"]


@dataclass
class Counter(_Metric):
    """A monotonically increasing count per label set."""

    _values: dict[LabelValues, float] = field(default_factory=dict, repr=False)

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        """Add ``amount`` to the labelled count."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labels: str) -> float:
        """The current count (0 when never incremented)."""
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def render(self) -> list[str]:
        """Exposition lines."""
        with self._lock:
            items = sorted(self._values.items())
        lines = self.header("counter")
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


@dataclass
class Gauge(_Metric):
    """A value that goes up and down per label set."""

    _values: dict[LabelValues, float] = field(default_factory=dict, repr=False)

    def add(self, *labels: str, amount: float = 1.0) -> None:
        """Add (or, negative, subtract) ``amount``."""
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, *labels: str, value: float) -> None:
        """Set the labelled value."""
        with self._lock:
            self._values[self._key(labels)] = value

    def render(self) -> list[str]:
        """Exposition lines."""
        with self._lock:
            items = sorted(self._values.items())
        lines = self.header("gauge")
        lines += [f"{self.name}{_labels(self.label_names, k)} {_number(v)}" for k, v in items]
        return lines


@dataclass
class Histogram(_Metric):
    """Cumulative buckets, sum and count per label set."""

    buckets: tuple[float, ...] = LATENCY_BUCKETS
    _series: dict[LabelValues, list[float]] = field(default_factory=dict, repr=False)

    def observe(self, value: float, *labels: str) -> None:
        """Record one observation."""
        key = self._key(labels)
        with self._lock:
            series = self._series.get(key)
            if series is None:  # per bucket counts, then sum, then count
                series = self._series[key] = [0.0] * (len(self.buckets) + 2)
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    series[i] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, *labels: str) -> float:
        """Observations recorded for these labels."""
        with self._lock:
            series = self._series.get(self._key(labels))
            return series[-1] if series else 0.0

    def total(self, *labels: str) -> float:
        """Sum of the observations recorded for these labels."""
        with self._lock:
            series = self._series.get(self._key(labels))
            return series[-2] if series else 0.0

    def render(self) -> list[str]:
        """Exposition lines (``_bucket`` with ``le``, ``_sum``, ``_count``)."""
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        lines = self.header("histogram")
        for key, series in items:
            bounds = (*self.buckets, math.inf)
            for bound, cumulative in zip(bounds, (*series[:-2], series[-1]), strict=True):
                le = f'le="{_number(bound)}"'
                lines.append(
                    f"{self.name}_bucket{_labels(self.label_names, key, le)} {_number(cumulative)}"
                )
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_number(series[-2])}")
            lines.append(
                f"{self.name}_count{_labels(self.label_names, key)} {_number(series[-1])}"
            )
        return lines


class ApiMetrics:
    """Every metric the API exports."""

    def __init__(self) -> None:
        self.requests = Counter(
            "mmrag_http_requests_total", "HTTP requests by method, route and status.",
            ("method", "route", "status"),
        )
        self.latency = Histogram(
            "mmrag_http_request_duration_seconds", "HTTP request latency by method and route.",
            ("method", "route"),
        )
        self.in_flight = Gauge(
            "mmrag_http_requests_in_flight", "HTTP requests being served.", ()
        )
        self.embed_seconds = Histogram(
            "mmrag_embed_seconds", "Model call time per batch by modality.", ("modality",)
        )
        self.embed_batch = Histogram(
            "mmrag_embed_batch_size", "Inputs per model call by modality.", ("modality",),
            buckets=SIZE_BUCKETS,
        )
        self.search_seconds = Histogram(
            "mmrag_search_seconds", "Vector store search time per query.", ()
        )
        self.cache = Counter(
            "mmrag_query_cache_total", "Text-query embedding cache lookups by result.",
            ("result",),
        )
        self.store_errors = Counter(
            "mmrag_store_unavailable_total", "Store calls that found Milvus unreachable.", ()
        )

    def render(self) -> str:
        """The whole exposition text."""
        lines: list[str] = []
        for metric in (
            self.requests, self.latency, self.in_flight, self.embed_seconds, self.embed_batch,
            self.search_seconds, self.cache, self.store_errors,
        ):
            lines += metric.render()
        return "\n".join(lines) + "\n"
