"""Bench: how much do N concurrent uploads of a huge, tiny PNG grow ``mmrag serve``? (issue #20.3)

Standalone (not part of the package). Writes a few demo images into a temp Lite collection
(the shipped ``mmrag-demo`` model), starts ``python -m mmrag serve`` on a loopback port, resets
the server's peak-RSS mark (``/proc/<pid>/clear_refs``), sends N uploads of one PNG of
``--side`` x ``--side`` pixels at once to ``POST /search/image`` and reports the statuses and
the server's peak RSS (``VmHWM``) over its RSS before the burst. The PNG is a few flat bands
(about 160 KB at 7000 x 7000 = 49 MP, 147 MB decoded).

Usage (the issue's case; the test suite runs a smaller one, tests/api/test_api_upload_memory.py)::

    .venv/bin/python benchmarks/upload_memory.py --side 7000 --uploads 40
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def big_png(side: int) -> bytes:
    """A side x side RGB PNG that compresses to almost nothing (bands and lines)."""
    image = np.zeros((side, side, 3), np.uint8)
    image[:, :, 0] = (np.arange(side) * 10 // max(1, side) * 25).astype(np.uint8)[None, :]
    image[::50, :, 1] = 255
    ok, encoded = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 9])
    assert ok
    return encoded.tobytes()


def rss_kib(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` memory field (VmRSS, VmHWM) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    """Reset the process's peak-RSS mark to its current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def _burst(base: str, png: bytes, uploads: int, timeout_s: float) -> list[int]:
    limits = httpx.Limits(max_connections=uploads)
    async with httpx.AsyncClient(base_url=base, timeout=timeout_s, limits=limits,
                                 trust_env=False) as http:

        async def one() -> int:
            files = {"file": ("big.png", png, "image/png")}
            response = await http.post("/search/image", files=files, data={"k": "3"})
            return response.status_code

        return list(await asyncio.gather(*(one() for _ in range(uploads))))


@dataclass(frozen=True)
class BurstResult:
    """Statuses and memory of one burst."""

    statuses: dict[int, int]
    rss_before_mb: float
    peak_mb: float
    seconds: float

    @property
    def growth_mb(self) -> float:
        """Peak RSS over the RSS before the burst."""
        return self.peak_mb - self.rss_before_mb


def burst(pid: int, base: str, png: bytes, uploads: int, timeout_s: float = 300.0) -> BurstResult:
    """Send ``uploads`` uploads of ``png`` at once and measure the server's peak RSS."""
    reset_peak(pid)
    before = rss_kib(pid, "VmRSS")
    started = time.perf_counter()
    statuses = asyncio.run(_burst(base, png, uploads, timeout_s))
    seconds = time.perf_counter() - started
    peak = rss_kib(pid, "VmHWM")
    return BurstResult(dict(Counter(statuses)), before / 1024, peak / 1024, seconds)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_demo(root: Path, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``mmrag serve`` (ready) over 8 demo images ingested into ``root/bench.db``."""
    from mmrag.cli import main as mmrag_main
    from retrieval.demo.synthetic import write_dataset

    manifest = write_dataset(root / "gallery", 8, seed=1)
    db = str(root / "bench.db")
    assert mmrag_main(["ingest", str(manifest), "--uri", db, "--collection", "bench",
                       "--model", "mmrag-demo", "--device", "cpu", "--quiet"]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("MMRAG_")}
    env.update(MMRAG_URI=db, MMRAG_COLLECTION="bench", MMRAG_MODEL="mmrag-demo",
               MMRAG_DEVICE="cpu", MMRAG_LOG_LEVEL="warning", **extra_env)
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(base + "/ready", timeout=5, trust_env=False).status_code == 200:
                return process, base
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("mmrag serve did not become ready")
        time.sleep(0.2)


def main() -> None:
    """Run the bench and print one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--side", type=int, default=7000, help="PNG width and height")
    parser.add_argument("--uploads", type=int, default=40, help="concurrent uploads")
    parser.add_argument("--budget-mb", type=int, default=None, help="MMRAG_DECODE_BUDGET_MB")
    parser.add_argument("--wait-s", type=float, default=None, help="MMRAG_DECODE_WAIT_S")
    args = parser.parse_args()
    extra = {}
    if args.budget_mb is not None:
        extra["MMRAG_DECODE_BUDGET_MB"] = str(args.budget_mb)
    if args.wait_s is not None:
        extra["MMRAG_DECODE_WAIT_S"] = str(args.wait_s)
    png = big_png(args.side)
    with tempfile.TemporaryDirectory() as tmp:
        process, base = serve_demo(Path(tmp), extra)
        try:
            httpx.post(base + "/search/image", files={"file": ("w.png", big_png(64))},
                       timeout=60, trust_env=False)  # warm the model path
            result = burst(process.pid, base, png, args.uploads)
        finally:
            process.terminate()
            process.wait(30)
    print(json.dumps({
        "side": args.side, "png_bytes": len(png), "uploads": args.uploads,
        "statuses": result.statuses, "rss_before_mb": round(result.rss_before_mb, 1),
        "peak_mb": round(result.peak_mb, 1), "growth_mb": round(result.growth_mb, 1),
        "seconds": round(result.seconds, 2), **extra,
    }))


if __name__ == "__main__":
    main()
