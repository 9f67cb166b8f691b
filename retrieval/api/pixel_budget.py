"""A budget of decoded-pixel bytes in flight, so hostile uploads cannot exhaust memory.

Decoding an upload needs memory in proportion to its pixels, not its bytes (a 143 KB PNG can be
49 megapixels, about 150 MB decoded). Before decoding, a request estimates the peak bytes its
decode needs from the image header (``decode_cost``) and holds that much of the budget
(``PixelBudget.hold``); once decoded it keeps only what the decoded array takes
(``Lease.shrink``) until it has been embedded. Requests that do not fit wait, first come first
served, up to the wait limit, then get 503 with ``Retry-After``. A request that needs more than
the whole budget runs alone (it waits until nothing else holds any), so memory stays within
the budget or the single largest image the pixel cap admits.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

from PIL import Image

from retrieval.api.errors import ApiError
from retrieval.imaging import draft_scale

RETRY_AFTER_S = 2
# Peak bytes per decoded pixel of 8-bit images (ru_maxrss of decode_image on a 49 MP PNG:
# ~6 a pixel for the full decode, ~3.75 reduced; the alpha path is estimated from its arrays):
REDUCED_BPP = 4.0  # opaque non-JPEG reduced while decoding: the full image once + its half
FULL_OPAQUE_BPP = 9.0  # full decode: OpenCV's buffer and its copy, plus the RGB result
ALPHA_BPP = 31.0  # straight alpha, composited over white in 16-bit temporaries
_WIDE_MODES = ("I;16", "I", "F")


@dataclass(frozen=True)
class HeaderFacts:
    """What the header says about the decode: size, format, alpha, bytes per sample."""

    width: int
    height: int
    fmt: str
    alpha: bool
    sample_bytes: int


def header_facts(data: bytes) -> HeaderFacts | None:
    """The header's facts (no pixels decoded); None when Pillow cannot read it (the decoder
    then answers why)."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            tiles = getattr(header, "tile", None) or []
            rawmode = str(tiles[0][3][0]) if tiles and tiles[0][3] else ""
            wide = header.mode.startswith(_WIDE_MODES) or ";16" in rawmode
            alpha = header.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
                "transparency" in header.info
            )
            return HeaderFacts(width, height, header.format or "", alpha, 2 if wide else 1)
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError,
            Image.DecompressionBombError):
        return None


def decode_cost(data: bytes, min_side: int | None, *, reduce: bool = True) -> int:
    """Estimated peak bytes of ``decode_image(data, min_side=..., reduce=...)``."""
    facts = header_facts(data)
    if facts is None:
        return len(data)
    pixels = facts.width * facts.height
    scale = draft_scale((facts.width, facts.height), min_side)
    if facts.alpha:
        per_pixel = ALPHA_BPP * facts.sample_bytes
    elif facts.fmt == "JPEG":  # libjpeg decodes at 1/scale directly
        pixels = math.ceil(facts.width / scale) * math.ceil(facts.height / scale)
        per_pixel = FULL_OPAQUE_BPP
    elif reduce and scale > 1:
        per_pixel = REDUCED_BPP
    else:
        per_pixel = FULL_OPAQUE_BPP * facts.sample_bytes
    return int(pixels * per_pixel) + len(data)


@dataclass
class _Waiter:
    need: int
    future: asyncio.Future[None]


@dataclass
class Lease:
    """Bytes of the budget one request holds (release it, or use ``async with``)."""

    budget: PixelBudget
    held: int
    _released: bool = field(default=False, repr=False)

    def shrink(self, keep: int) -> None:
        """Keep only ``keep`` bytes (e.g. the decoded array), giving the rest back."""
        keep = max(0, min(keep, self.held))
        if not self._released and keep < self.held:
            self.budget._give_back(self.held - keep)
            self.held = keep

    def release(self) -> None:
        """Give everything back (idempotent)."""
        if not self._released:
            self._released = True
            self.budget._give_back(self.held)
            self.held = 0

    async def __aenter__(self) -> Lease:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class PixelBudget:
    """At most ``capacity`` bytes of decoding in flight; waiters are served in order."""

    def __init__(self, capacity: int, wait_s: float) -> None:
        self.capacity = max(1, capacity)
        self.wait_s = wait_s
        self._used = 0
        self._waiters: deque[_Waiter] = deque()

    @property
    def used(self) -> int:
        """Bytes held right now."""
        return self._used

    @property
    def waiting(self) -> int:
        """Requests waiting for budget."""
        return len(self._waiters)

    async def hold(self, cost: int) -> Lease:
        """Hold ``cost`` bytes (all of the budget if more), waiting up to ``wait_s``; a 503 with
        Retry-After when the budget does not free up in time."""
        need = min(max(0, cost), self.capacity)
        if not self._waiters and self._used + need <= self.capacity:
            self._used += need
            return Lease(self, need)
        waiter = _Waiter(need, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter.future
        except TimeoutError as exc:
            self._abandon(waiter)
            raise busy(self.wait_s) from exc
        except BaseException:  # cancelled (the client went away)
            self._abandon(waiter)
            raise
        return Lease(self, need)

    def _abandon(self, waiter: _Waiter) -> None:
        """A waiter gave up: return what it was granted meanwhile, or leave the queue."""
        if waiter.future.done() and not waiter.future.cancelled():
            self._give_back(waiter.need)
            return
        waiter.future.cancel()
        with contextlib.suppress(ValueError):  # already granted and dequeued
            self._waiters.remove(waiter)
        self._wake()

    def _give_back(self, amount: int) -> None:
        self._used = max(0, self._used - amount)
        self._wake()

    def _wake(self) -> None:
        """Grant waiting requests, in order, while the first one fits."""
        while self._waiters:
            first = self._waiters[0]
            if first.future.done():
                self._waiters.popleft()
                continue
            if self._used + first.need > self.capacity:
                return
            self._waiters.popleft()
            self._used += first.need
            first.future.set_result(None)


def busy(wait_s: float) -> ApiError:
    """The 503 for a request that found no decoding budget in time."""
    return ApiError(
        503,
        f"the server is decoding other large images and had no memory budget free within "
        f"{wait_s:g}s; retry after {RETRY_AFTER_S}s, or send a smaller image",
        type="busy",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )
