"""What a collection records about its model, so the model can be loaded from the collection alone.

A spec is ``{"model": NAME, "pretrained": TAG | None, "checkpoint": PATH | None}`` as the user
gave them (a config ``.json`` or checkpoint path made absolute). ``mmrag ingest`` (both engines),
the ``ann_insert`` operator, ``mmrag reindex`` and ``mmrag migrate`` record it. Readers (the API,
``mmrag search``/``ask``) load the recorded model instead of the configured one only for a moved
name: when the configured collection resolves to another collection (after a reindex) that
records another model. The rule lives in ``retrieval.follow_model``; a plain collection is
always read with the configured model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from retrieval.config import Settings
from retrieval.embedders.base import Embedder
from retrieval.errors import ModelMismatchError, ModelNotFoundError

SPEC_KEYS = ("model", "pretrained", "checkpoint")


def _absolute(path: str | Path | None) -> str | None:
    """An absolute path string, or None."""
    if path is None or str(path) == "":
        return None
    return str(Path(path).expanduser().resolve())


def model_spec(
    model: str, pretrained: str | None = None, checkpoint: str | Path | None = None
) -> dict[str, Any]:
    """The spec of a model named as create_embedder takes it (paths made absolute)."""
    if model.endswith(".json"):
        model = _absolute(model) or model
    checkpoint_path = _absolute(checkpoint)
    return {
        "model": model,
        "pretrained": None if checkpoint_path else (pretrained or None),
        "checkpoint": checkpoint_path,
    }


def spec_from_settings(settings: Settings) -> dict[str, Any]:
    """The spec of the model the settings name (paths made absolute)."""
    return model_spec(settings.model, settings.pretrained_tag(), settings.checkpoint)


def spec_flags(spec: Mapping[str, Any] | None) -> str:
    """A recorded spec as the ``mmrag`` flags that select its model ('' when none)."""
    if not spec or not spec.get("model"):
        return ""
    flags = [f"--model {spec['model']}"]
    if spec.get("checkpoint"):
        flags.append(f"--checkpoint {spec['checkpoint']}")
    elif spec.get("pretrained"):
        flags.append(f"--pretrained {spec['pretrained']}")
    return " ".join(flags)


def settings_for_spec(settings: Settings, spec: Mapping[str, Any]) -> Settings:
    """The settings with the model fields replaced by a recorded spec."""
    if not isinstance(spec.get("model"), str) or not spec["model"]:
        raise ModelNotFoundError(f"recorded model spec has no model name: {dict(spec)!r}")
    checkpoint = spec.get("checkpoint")
    return settings.model_copy(
        update={
            "model": spec["model"],
            "pretrained": spec.get("pretrained") or "",
            "checkpoint": Path(checkpoint) if checkpoint else None,
        }
    )


def same_spec(settings: Settings, spec: Mapping[str, Any] | None) -> bool:
    """Whether the settings name the model the spec records (no spec: assume they do)."""
    if not spec:
        return True
    mine = spec_from_settings(settings)
    return all(mine.get(key) == spec.get(key) for key in SPEC_KEYS)


def embedder_for_spec(
    settings: Settings, spec: Mapping[str, Any], expected_model_id: str | None = None
) -> Embedder:
    """Load the model a spec records (device and batch from settings); check its id if given."""
    from retrieval.embedders import create_embedder_from_settings

    embedder = create_embedder_from_settings(settings_for_spec(settings, spec))
    if expected_model_id and embedder.model_id != expected_model_id:
        raise ModelMismatchError(
            f"the recorded model {dict(spec)!r} now loads as {embedder.model_id!r}, not "
            f"{expected_model_id!r} (was the checkpoint file changed?)"
        )
    return embedder
