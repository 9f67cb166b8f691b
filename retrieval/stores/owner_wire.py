"""The owner protocol's values as JSON: records, hits, vectors, targets and errors.

Vectors travel as base64 of little-endian float32 with their shape; everything else is plain
JSON (``json`` with its NaN extension, so a non-finite score or a bad vector reaches the store's
own checks unchanged). Errors travel as the name of an ``MmragError`` class and its message, and
come back as the same class, so a command prints the same line and exits with the same code as
when it opened the file itself.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from retrieval import errors
from retrieval.stores.base import Capabilities, Fusion, Target
from retrieval.types import CollectionInfo, Hit, Modality, Record

PREFIX = "/_owner"  # the hidden routes' prefix (routers/owner.py)
TOKEN_HEADER = "X-Mmrag-Owner-Token"
_DTYPE = np.dtype("<f4")


def dumps(value: Any) -> bytes:
    """A JSON body (NaN allowed: the store, not the wire, says what is finite)."""
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def loads(body: bytes) -> Any:
    """A JSON body as Python values."""
    return json.loads(body.decode("utf-8"))


def encode_array(array: Any) -> dict[str, Any]:
    """An array of numbers as shape and base64 float32 (what the store converts it to anyway)."""
    values = np.ascontiguousarray(np.asarray(array, dtype=_DTYPE))
    return {"shape": list(values.shape), "b64": base64.b64encode(values.tobytes()).decode()}


def decode_array(data: Mapping[str, Any]) -> np.ndarray:
    """The float32 array ``encode_array`` sent."""
    raw = base64.b64decode(str(data["b64"]), validate=True)
    shape = tuple(int(n) for n in data["shape"])
    return np.frombuffer(raw, dtype=_DTYPE).reshape(shape).astype(np.float32)


def encode_record(record: Record) -> dict[str, Any]:
    """One record for the wire."""
    return {
        "id": record.id, "vector": encode_array(record.vector), "source": record.source,
        "caption": record.caption, "modality": Modality(record.modality).value,
        "metadata": dict(record.metadata), "model_id": record.model_id,
    }


def decode_record(data: Mapping[str, Any]) -> Record:
    """The record ``encode_record`` sent."""
    return Record(
        id=str(data["id"]), vector=decode_array(data["vector"]), source=str(data["source"]),
        caption=str(data["caption"]), modality=Modality(data["modality"]),
        metadata=dict(data["metadata"]), model_id=str(data["model_id"]),
    )


def encode_hit(hit: Hit) -> dict[str, Any]:
    """One hit for the wire."""
    return {
        "id": hit.id, "score": hit.score, "source": hit.source, "caption": hit.caption,
        "modality": Modality(hit.modality).value, "metadata": dict(hit.metadata),
        "model_id": hit.model_id,
        "vector": None if hit.vector is None else encode_array(hit.vector),
    }


def decode_hit(data: Mapping[str, Any]) -> Hit:
    """The hit ``encode_hit`` sent."""
    vector = data.get("vector")
    return Hit(
        id=str(data["id"]), score=float(data["score"]), source=str(data["source"]),
        caption=str(data["caption"]), modality=Modality(data["modality"]),
        metadata=dict(data["metadata"]), model_id=str(data["model_id"]),
        vector=None if vector is None else decode_array(vector),
    )


def encode_info(info: CollectionInfo) -> dict[str, Any]:
    """Collection facts for the wire."""
    return {
        "name": info.name, "count": info.count, "dim": info.dim, "model_id": info.model_id,
        "index_type": info.index_type, "metric": info.metric,
    }


def decode_info(data: Mapping[str, Any]) -> CollectionInfo:
    """The facts ``encode_info`` sent."""
    return CollectionInfo(
        name=str(data["name"]), count=int(data["count"]), dim=int(data["dim"]),
        model_id=str(data["model_id"]), index_type=str(data["index_type"]),
        metric=str(data["metric"]),
    )


def encode_target(target: Target) -> dict[str, Any]:
    """A name's target for the wire."""
    return {"collection": target.collection, "model_id": target.model_id, "dim": target.dim,
            "spec": target.spec}


def decode_target(data: Mapping[str, Any]) -> Target:
    """The target ``encode_target`` sent."""
    spec = data.get("spec")
    return Target(collection=str(data["collection"]), model_id=str(data["model_id"]),
                  dim=int(data["dim"]), spec=dict(spec) if spec is not None else None)


def encode_capabilities(capabilities: Capabilities) -> dict[str, Any]:
    """A store's capabilities for the wire (every field, so a new one travels too)."""
    return dataclasses.asdict(capabilities)


def decode_capabilities(data: Mapping[str, Any]) -> Capabilities:
    """The owner's store capabilities, seen from a client: writes come from several processes."""
    known = {f.name for f in dataclasses.fields(Capabilities)}
    values = {name: value for name, value in data.items() if name in known}
    values["shared_writers"] = True
    return Capabilities(**values)


def encode_fusion(fusion: Fusion) -> dict[str, Any]:
    """A hybrid search's fusion for the wire."""
    return dataclasses.asdict(fusion)


def decode_fusion(data: Mapping[str, Any]) -> Fusion:
    """The fusion ``encode_fusion`` sent."""
    weights = data.get("weights", (0.5, 0.5))
    return Fusion(ranker=str(data.get("ranker", "rrf")), rrf_k=int(data.get("rrf_k", 60)),
                  weights=(float(weights[0]), float(weights[1])))


def encode_error(exc: errors.MmragError) -> dict[str, Any]:
    """An mmrag error for the wire: its class (the closest one the client knows) and message."""
    kind = type(exc)
    while kind.__name__ not in _KNOWN:
        kind = kind.__mro__[1]
    body: dict[str, Any] = {"type": kind.__name__, "message": str(exc)}
    if isinstance(exc, errors.FilterError):
        body.update(field=exc.field, kind=exc.kind)
    return {"error": body}


def decode_error(data: Any, fallback: str) -> errors.MmragError:
    """The error an owner answered with, as the same class (``fallback``: the message when the
    answer is not one)."""
    body = data.get("error") if isinstance(data, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return errors.StoreError(fallback)
    message = body["message"]
    kind = _KNOWN.get(str(body.get("type")), errors.StoreError)
    if kind is errors.FilterError:
        return errors.FilterError(message, field=body.get("field"),
                                  kind=str(body.get("kind") or "invalid_filter"))
    return kind(message)


_KNOWN: dict[str, type[errors.MmragError]] = {
    name: value
    for name, value in vars(errors).items()
    if isinstance(value, type) and issubclass(value, errors.MmragError)
}
