"""Plain data carried between mmrag's parts (frozen dataclasses)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np


class Modality(str, Enum):
    """What a vector was computed from."""

    IMAGE = "image"
    TEXT = "text"


@dataclass(frozen=True)
class Record:
    """One stored row: a unit vector with where it came from and what describes it."""

    id: str
    vector: np.ndarray
    source: str
    caption: str = ""
    modality: Modality = Modality.IMAGE
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model_id: str = ""


@dataclass(frozen=True)
class Hit:
    """One search result: a stored row's fields and its similarity score."""

    id: str
    score: float
    source: str = ""
    caption: str = ""
    modality: Modality = Modality.IMAGE
    metadata: Mapping[str, Any] = field(default_factory=dict)
    model_id: str = ""
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class CollectionInfo:
    """What a collection holds and how it is indexed."""

    name: str
    count: int
    dim: int
    model_id: str
    index_type: str
    metric: str

    def as_dict(self) -> dict[str, Any]:
        """The fields as the API names them: name, count, model, dimension, index, metric."""
        return {
            "name": self.name, "count": self.count, "model": self.model_id,
            "dimension": self.dim, "index": self.index_type, "metric": self.metric,
        }
