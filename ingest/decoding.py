"""How the ingest job decodes: in its threads, in worker processes, or JPEGs on the model's device.

``ImageDecoding.open`` chooses from the settings (``MMRAG_DECODE_WORKERS``,
``MMRAG_JPEG_DECODER``) and the embedder:

* threads (``--workers``): ``decode_and_prepare`` in the job's decode threads (the default on a
  CPU model: it embeds slower than two threads decode);
* worker processes (``ingest.decode_pool``): the same functions, results through shared memory
  (the default with a GPU model: all cores but two);
* device JPEGs (``retrieval.embedders.gpu_decode``, the default on CUDA): the decode stage only
  reads a JPEG's header and leaves it encoded; the embed stage decodes the batch with nvJPEG,
  resizes and normalises it there; other formats take the CPU path above.

The embed stage returns, per work, a vector or the reason a JPEG the device and the CPU could
not decode was rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from ingest.decode_pool import DecodePool, resolve_decode_workers
from ingest.loading import Decoder, Work
from retrieval.config import Settings
from retrieval.decode_worker import Decoded, decode_and_prepare
from retrieval.embedders.base import Embedder
from retrieval.errors import ImageDecodeError
from retrieval.photo_metadata import photo_fields


class ImageDecoding:
    """The decoder of one job's decode stage, and the matching embed step."""

    def __init__(
        self,
        embedder: Embedder,
        max_pixels: int,
        pool: DecodePool | None = None,
        device: Any = None,
    ) -> None:
        self.embedder = embedder
        self.max_pixels = max_pixels
        self.pool = pool
        self.device = device  # a gpu_decode.DeviceJpegDecoder, or None

    @classmethod
    def open(
        cls, settings: Settings, embedder: Embedder, max_pixels: int, threads: int
    ) -> ImageDecoding:
        """The decoding the settings ask for (see the module docstring)."""
        config = getattr(embedder, "preprocess_config", None)
        if config is None:  # not an open_clip model: decode with its own prepare_image
            return cls(embedder, max_pixels)
        device = str(getattr(embedder, "device", "cpu"))
        device_jpegs = settings.jpeg_decoder == "device" or (
            settings.jpeg_decoder == "auto" and device.startswith("cuda")
        )
        jpegs = None
        if device_jpegs:
            from retrieval.embedders.gpu_decode import DeviceJpegDecoder

            jpegs = DeviceJpegDecoder(config, device, max_pixels)
        processes = resolve_decode_workers(settings.decode_workers, device)
        pool = None
        if processes:
            pool = DecodePool(
                processes, config, max_pixels, embedder.decode_min_side,
                slots=max(threads, 2 * processes),
            )
        return cls(embedder, max_pixels, pool, jpegs)

    def threads(self, workers: int) -> int:
        """Decode-stage threads: ``workers``, or two per worker process (one waits on a result
        while the other's bytes are on their way)."""
        return max(workers, 2 * self.pool.processes) if self.pool is not None else workers

    @property
    def cpu(self) -> Decoder:
        """The CPU decoder: the worker processes, or this thread."""
        if self.pool is not None:
            return self.pool.decode
        embedder = self.embedder
        return lambda data, photo: decode_and_prepare(
            data, embedder.prepare_image, self.max_pixels, embedder.decode_min_side, photo
        )

    def decoder(self) -> Decoder:
        """The decode stage's decoder (an ``ingest.loading.Decoder``)."""
        cpu = self.cpu
        if self.device is None:
            return cpu
        from retrieval.embedders.gpu_decode import DEVICE_MAX_PIXELS, EncodedJpeg
        from retrieval.imaging import plain_jpeg

        def decode(data: bytes, photo: bool) -> Decoded:
            try:
                jpeg = plain_jpeg(data, max_pixels=self.max_pixels)
            except ImageDecodeError as exc:
                return Decoded(error=str(exc))
            if jpeg is None or jpeg[1] > DEVICE_MAX_PIXELS:  # other formats, huge photos: CPU
                return cpu(data, photo)
            return Decoded(EncodedJpeg(data, jpeg[0]), photo_fields(data) if photo else None)

        return decode

    def embed(
        self, works: list[Work], embed: Callable[[list[Work]], list[np.ndarray]]
    ) -> list[np.ndarray | str]:
        """``embed(works)``'s vectors, the JPEGs left encoded decoded on the device first; a
        JPEG neither the device nor the CPU could decode gives its reject reason instead."""
        if self.device is None:
            return list(embed(works))
        inputs = self.device.prepare_batch([work.prepared for work in works])
        ok = [i for i, x in enumerate(inputs) if not isinstance(x, str)]
        out: list[np.ndarray | str] = list(inputs)
        if ok:
            vectors = embed([replace(works[i], prepared=inputs[i]) for i in ok])
            for i, vector in zip(ok, vectors, strict=True):
                out[i] = vector
        return out

    def close(self) -> None:
        """Stop the worker processes, if any."""
        if self.pool is not None:
            self.pool.close()
