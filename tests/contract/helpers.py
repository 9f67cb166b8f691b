"""Data builders shared by the store contract tests."""

from __future__ import annotations

import socket
from collections.abc import Callable

import numpy as np

from retrieval.stores.base import VectorStore
from retrieval.types import Modality, Record
from tests.support.milvus_server import EmbeddedServer

__all__ = [
    "DIM", "MODEL", "EmbeddedServer", "StoreFactory", "closed_port", "make_records", "unit_vectors",
]

DIM = 16
MODEL = "test/model-a"

StoreFactory = Callable[..., VectorStore]


def unit_vectors(count: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """Seeded random unit vectors (float32)."""
    vectors = np.random.default_rng(seed).normal(size=(count, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def make_records(
    count: int, dim: int = DIM, seed: int = 0, prefix: str = "r", model_id: str = ""
) -> list[Record]:
    """Records with ids prefix0000..., labels dog/cat alternating and n = index."""
    vectors = unit_vectors(count, dim, seed)
    return [
        Record(
            id=f"{prefix}{i:04d}",
            vector=vectors[i],
            source=f"/data/images/{prefix}{i:04d}.jpg",
            caption=f"caption number {i}",
            modality=Modality.IMAGE if i % 3 else Modality.TEXT,
            metadata={"label": "dog" if i % 2 else "cat", "n": i, "tags": ["a", "ü"]},
            model_id=model_id,
        )
        for i in range(count)
    ]


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
