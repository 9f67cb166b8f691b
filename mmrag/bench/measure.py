"""How the bench sections measure: wall time, model-only throughput, peak RSS, CPU seconds."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np


def seconds(fn: Callable[[], Any]) -> float:
    """Wall seconds of one call."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    """Wall seconds of each of ``repeat`` calls."""
    return [seconds(fn) for _ in range(repeat)]


def median_s(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall seconds of ``repeat`` calls."""
    return float(np.median(timed(fn, repeat)))


def texts_per_s(embedder: Any, texts: list[str], repeat: int) -> float:
    """Texts/s of ``embedder.embed_texts`` on one batch, median of ``repeat`` calls."""
    return len(texts) / median_s(lambda: embedder.embed_texts(texts), repeat)


def bare_forward(embedder: Any, batch_size: int, batches: int) -> float:
    """Images/s of the model alone on already-decoded tensors at the ingest batch size."""
    import torch

    shape = (batch_size, *embedder.preprocess_config.input_shape)
    x = torch.randn(shape).to(embedder.input_dtype)  # bf16 models take bf16 images
    model = embedder.model
    with torch.inference_mode():
        model.encode_image(x)  # warm-up at the measured shape
        return batch_size / median_s(lambda: model.encode_image(x), batches)


def percentiles(ms: np.ndarray) -> str:
    """'p50/p95/p99' of a latency array, whole numbers."""
    return "/".join(f"{np.percentile(ms, p):.0f}" for p in (50, 95, 99))


def size_label(n: int) -> str:
    """10000 -> '10k', 1000000 -> '1M', 500 -> '500'."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def _sum_over(procs: Iterable[Any], read: Callable[[Any], float]) -> float:
    """``read(proc)`` summed over the processes still there to be read."""
    import psutil

    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += read(proc)
    return total


def cpu_seconds(procs: list[Any]) -> float:
    """User + system CPU seconds of this process and the given children."""
    import psutil

    def used(proc: Any) -> float:
        times = proc.cpu_times()
        return float(times.user + times.system)

    return _sum_over([psutil.Process(), *procs], used)


class PeakRss:
    """Samples the RSS of a process plus its children (the Milvus Lite server); keeps the peak."""

    def __init__(self, pid: int | None = None, every_s: float = 0.1) -> None:
        import psutil

        self.proc = psutil.Process(pid or os.getpid())
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        import psutil

        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return 0
        return int(_sum_over(procs, lambda proc: proc.memory_info().rss))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())

    @property
    def mib(self) -> float:
        return self.peak / 2**20
