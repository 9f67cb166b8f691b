"""How much each bench section does: the full sizes, and the --quick and --tiny presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mmrag.bench.models import BENCH_MODEL, DEMO_MODEL


@dataclass
class Sizes:
    """How much each section does (quick vs full)."""

    images: int = 512
    naive_images: int = 64
    memory_images: int = 10_000
    batch_size: int = 32
    bare_batches: int = 4
    vectors: int = 100_000
    ann_vectors: int = 100_000  # clustered, IVF_FLAT: N-client QPS with an ANN index (0: skip)
    queries: int = 40
    concurrent_queries: int = 2000  # ~10 s of 16 clients: a steady rate, not a burst
    clients: int = 16
    text_batch: int = 16
    store_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    store_queries: int = 50
    models: list[str] = field(default_factory=lambda: [BENCH_MODEL, DEMO_MODEL])
    torch_threads: int = 0  # 0: torch's default (one per core); also passed to the server
    precision: str = "auto"  # MMRAG_PRECISION for every model here and in the server
    server_search: bool = True  # the search rows on the embedded Milvus server (HNSW) too
    peer_images: int = 2000  # --peers: the JPEG files every tool ingests
    peer_fp32: bool = True  # --peers: mmrag at fp32 too (clip-retrieval runs fp32 on CPUs)


QUICK: dict[str, Any] = dict(
    images=64, naive_images=16, memory_images=256, bare_batches=2, vectors=10_000,
    ann_vectors=0, queries=12, concurrent_queries=400, store_sizes=[10_000], store_queries=20,
    peer_images=200,
)
TINY: dict[str, Any] = dict(
    images=8, naive_images=4, memory_images=8, batch_size=4, bare_batches=1, vectors=500,
    ann_vectors=500, queries=3, concurrent_queries=8, clients=4, text_batch=4,
    store_sizes=[500], store_queries=5, peer_images=12, peer_fp32=False,
    server_search=False,  # ~30 s of server start-up; tests/integration/test_bench_peers.py
)
