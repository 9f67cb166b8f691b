"""Decode and prepare images in worker processes; model inputs come back through shared memory.

Why processes: on the 2-core box, 256 photos of 640x480 decode and prepare at 441 images/s in
one thread and 452/s in two (x1.03: OpenCV's decoder, its INTER_AREA shrink and torch's resize
each release the GIL, but the Python between them and OpenCV's own thread pool keep the threads
from overlapping), while two processes reach 572/s (x1.3, on a box shared with other jobs); on
the 16-core H200 host, 14 threads fed the GPU 862 images/s (``docs/results/gpu_check_h200.json``).

Each worker process runs the very functions the threads run (``ingest.loading``'s
``decode_and_prepare`` with ``preprocess_image``, one OpenCV and one torch thread each), so the
rows are identical. A caller thread takes a free slot of one shared-memory block, sends the
file's bytes, and the worker writes the float32 model input into the slot: only the bytes in and
a small reply (photo fields or a reason) are pickled, never the arrays.
"""

from __future__ import annotations

import math
import multiprocessing
import multiprocessing.context
import os
import queue
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import shared_memory

import numpy as np

from retrieval.decode_worker import Decoded, decode_into, slot_view, start_worker
from retrieval.embedders.preprocess import PreprocessConfig
from retrieval.errors import ConfigError, MmragError

AUTO = "auto"
RESERVED_CORES = 2  # left to the model's feeding thread and the writer
WORKER_MODULE = "retrieval.decode_worker"  # all a worker imports


class DecodeWorkerError(MmragError):
    """A decode worker process died (killed, out of memory, or a crashing decoder)."""


def resolve_decode_workers(setting: str, device: str, cores: int | None = None) -> int:
    """Worker processes for decoding: an explicit count (0: decode in threads), or for 'auto'
    all cores but two when the model runs on a GPU (decoding is then the bottleneck), else 0
    (a CPU model needs the cores, and threads decode faster than it embeds)."""
    value = setting.strip().lower()
    if value != AUTO:
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            raise ConfigError(
                f"MMRAG_DECODE_WORKERS={setting!r} is neither 'auto' nor a number of processes "
                f"(0 decodes in threads): set it to auto, 0 or a count such as 8."
            )
        return count
    cores = cores or os.cpu_count() or 1
    if not device.startswith("cuda"):
        return 0
    return max(1, cores - RESERVED_CORES)


class DecodePool:
    """Worker processes that decode and prepare images into shared-memory slots.

    Thread-safe: up to ``slots`` caller threads decode at once (more wait for a slot). Use it as
    a context manager, or call ``close``.
    """

    def __init__(
        self,
        processes: int,
        config: PreprocessConfig,
        max_pixels: int,
        min_side: int | None,
        slots: int | None = None,
    ) -> None:
        if processes < 1:
            raise ConfigError(f"a decode pool needs at least 1 process, got {processes}")
        self.processes = processes
        self.shape = config.input_shape
        self.slots = slots or 2 * processes
        self._slot_bytes = math.prod(self.shape) * 4
        self._memory = shared_memory.SharedMemory(create=True, size=self.slots * self._slot_bytes)
        self._free: queue.Queue[int] = queue.Queue()
        for slot in range(self.slots):
            self._free.put(slot)
        self._executor = ProcessPoolExecutor(
            processes,
            mp_context=_context(),
            initializer=start_worker,
            initargs=(self._memory.name, config, max_pixels, min_side),
        )

    def decode(self, data: bytes, photo: bool) -> Decoded:
        """Decode and prepare one image in a worker (an ``ingest.loading.Decoder``)."""
        slot = self._free.get()
        try:
            try:
                fields, error = self._executor.submit(decode_into, slot, data, photo).result()
            except BrokenProcessPool as exc:
                raise DecodeWorkerError(
                    "a decode worker process died (killed, out of memory, or a crashing "
                    "decoder). Rerun the ingest: it resumes where it stopped. To decode in "
                    "threads instead, set MMRAG_DECODE_WORKERS=0."
                ) from exc
            if error is not None:
                return Decoded(error=error)
            return Decoded(self._view(slot).copy(), fields)
        finally:
            self._free.put(slot)

    def _view(self, slot: int) -> np.ndarray:
        """The float32 model input held in one slot."""
        return slot_view(self._memory, slot, self.shape)

    def close(self) -> None:
        """Stop the workers and free the shared memory."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._memory.close()
        self._memory.unlink()

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _context() -> multiprocessing.context.BaseContext:
    """Workers forked from a fork server that imported the decoding code once (never forked
    from the threaded job itself); spawned where there is no fork server (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([WORKER_MODULE])
    return context
