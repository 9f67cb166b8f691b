"""Model names to embedders: open_clip's registry plus mmrag's own bundled models."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip

from retrieval.config import DEFAULT_MODEL, Settings
from retrieval.embedders.base import Embedder
from retrieval.embedders.open_clip import OpenClipEmbedder
from retrieval.errors import ConfigError, ModelNotFoundError

log = logging.getLogger(__name__)

DEMO_MODEL = "mmrag-demo"
DEMO_ASSETS = Path(__file__).resolve().parent.parent / "demo" / "assets"
_REQUIRED_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


@dataclass(frozen=True)
class BundledModel:
    """A model mmrag knows by name: an open_clip config JSON and its default checkpoint."""

    name: str
    config: Path
    checkpoint: Path


_BUNDLED: dict[str, BundledModel] = {
    DEMO_MODEL: BundledModel(
        DEMO_MODEL, DEMO_ASSETS / f"{DEMO_MODEL}.json", DEMO_ASSETS / f"{DEMO_MODEL}.safetensors"
    ),
}
_LOCK = threading.Lock()


def register_model(name: str, config: str | Path, checkpoint: str | Path) -> None:
    """Make ``name`` resolvable by create_embedder (config file stem must equal the name)."""
    config_path, checkpoint_path = Path(config).expanduser(), Path(checkpoint).expanduser()
    if config_path.stem != name:
        raise ConfigError(f"config file {config_path.name} must be named {name}.json")
    _BUNDLED[name] = BundledModel(name, config_path, checkpoint_path)


def list_models() -> list[str]:
    """Every model name create_embedder accepts: open_clip's and mmrag's registered ones."""
    names = list(open_clip.list_models())
    return names + [name for name in _BUNDLED if name not in names]


def bundled_models() -> list[BundledModel]:
    """mmrag's own models: the bundled ones and those added with register_model."""
    return list(_BUNDLED.values())


def add_model_config(path: str | Path) -> list[str]:
    """Register an open_clip model config JSON (or a folder of them); returns the names added."""
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise ModelNotFoundError(f"model config not found: {path}")
    configs = _read_configs(path)
    if not configs:
        raise ConfigError(f"no open_clip model config (with {', '.join(_REQUIRED_KEYS)}) in {path}")
    with _LOCK:
        if any(open_clip.get_model_config(name) != cfg for name, cfg in configs.items()):
            open_clip.add_model_config(path)  # later registrations win on name clashes
    return sorted(configs)


def create_embedder(
    model: str = DEFAULT_MODEL,
    pretrained: str | None = None,
    checkpoint: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 32,
    torch_threads: int = 0,
    **kwargs: Any,
) -> Embedder:
    """Build the embedder for a model name, with a pretrained tag or a checkpoint file.

    ``model`` may also be the path of an open_clip model config JSON: it is registered and its
    file stem becomes the name. mmrag's registered models (e.g. ``mmrag-demo``) load their own
    config and checkpoint and ignore ``pretrained``; an explicit ``checkpoint`` still wins.
    """
    if model.endswith(".json"):
        model = add_model_config(model)[0]
    bundled = _BUNDLED.get(model)
    if bundled is not None:
        if not bundled.config.is_file():
            raise ModelNotFoundError(
                f"{model}: config {bundled.config} is missing (its assets are not built yet)"
            )
        add_model_config(bundled.config)
        if checkpoint is None:
            if not bundled.checkpoint.is_file():
                raise ModelNotFoundError(
                    f"{model}: weights {bundled.checkpoint} are missing (not built yet); "
                    f"pass checkpoint= to use other weights"
                )
            checkpoint = bundled.checkpoint
        if pretrained:
            log.debug("ignoring pretrained=%r for bundled model %s", pretrained, model)
        pretrained = None
    return OpenClipEmbedder(
        model_name=model,
        pretrained=pretrained,
        checkpoint=checkpoint,
        device=device,
        batch_size=batch_size,
        torch_threads=torch_threads,
        **kwargs,
    )


def create_embedder_from_settings(settings: Settings) -> Embedder:
    """Build the embedder that ``MMRAG_MODEL`` / ``_PRETRAINED`` / ``_CHECKPOINT`` ... describe."""
    return create_embedder(
        settings.model,
        pretrained=settings.pretrained_tag(),
        checkpoint=settings.checkpoint,
        device=settings.device,
        batch_size=settings.batch_size,
        torch_threads=settings.torch_threads,
        precision=settings.precision,
    )


def _read_configs(path: Path) -> dict[str, dict[str, Any]]:
    """The valid model configs in a JSON file or a folder, keyed by file stem (as open_clip)."""
    files = [path] if path.is_file() else sorted(path.glob("*.json"))
    configs: dict[str, dict[str, Any]] = {}
    for file in files:
        try:
            cfg = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read model config {file}: {exc}") from exc
        if isinstance(cfg, dict) and all(key in cfg for key in _REQUIRED_KEYS):
            configs[file.stem] = cfg
        elif path.is_file():
            raise ConfigError(f"{file} is not an open_clip model config (needs {_REQUIRED_KEYS})")
    return configs
