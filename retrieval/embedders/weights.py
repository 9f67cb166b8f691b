"""open_clip's pretrained weights: which Hugging Face file a tag needs, whether it is in the local
cache, and -- without network access -- a whole message saying what to do instead.

open_clip fetches a tag's weights with ``huggingface_hub``, which retries a connection error
five times with back-off per candidate file (about 74 s offline). Here the cache is read first
(no network at all when the file is there); otherwise the hub is probed once, briefly, and an
unreachable hub (or ``HF_HUB_OFFLINE=1``) fails at once with the file, the cache folder and the
offline choices. ``HF_ENDPOINT`` and ``HF_HUB_CACHE``/``HF_HOME`` are honoured as the hub does.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import open_clip
from huggingface_hub import constants as hub_constants
from huggingface_hub import hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RemoteEntryNotFoundError
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from open_clip.transform import PreprocessCfg

from retrieval.errors import ModelNotFoundError

HUB_PROBE_TIMEOUT_S = 3.0  # one HEAD request: DNS failure or a refused port answer at once
OFFLINE_MODEL = "mmrag-demo"
# PreprocessCfg fields a tag may set; 'size' always comes from the built model (as open_clip).
_TAG_PREPROCESS_KEYS = tuple(f.name for f in fields(PreprocessCfg) if f.name != "size")


@dataclass(frozen=True)
class HubWeights:
    """The Hugging Face file(s) open_clip loads for ``model`` with pretrained ``tag``."""

    model: str
    tag: str
    repo: str
    filenames: tuple[str, ...]  # in open_clip's order: the safetensors alternative first
    preprocess: dict[str, Any]  # the tag's preprocessing (mean, std, interpolation, ...)

    @property
    def label(self) -> str:
        """``model/tag``, as mmrag names the model."""
        return f"{self.model}/{self.tag}"

    @property
    def files_text(self) -> str:
        """The candidate files for a message: 'a (or b)'."""
        first, *others = self.filenames
        return first + "".join(f" (or {name})" for name in others)

    @property
    def repo_url(self) -> str:
        """The repository's page at the configured endpoint."""
        return f"{hub_constants.ENDPOINT}/{self.repo}"

    @property
    def cache_folder(self) -> Path:
        """Where huggingface_hub keeps this repository's files on this machine."""
        return Path(hub_constants.HF_HUB_CACHE) / f"models--{self.repo.replace('/', '--')}"

    def cached_file(self) -> Path | None:
        """The weights file already in the local cache (None: not there)."""
        for name in self.filenames:
            found = try_to_load_from_cache(self.repo, name, cache_dir=hub_constants.HF_HUB_CACHE)
            if isinstance(found, str) and os.path.isfile(found):
                return Path(found)
        return None


def hub_weights(model: str, tag: str) -> HubWeights | None:
    """The hub file(s) of a known pretrained tag (None: the tag names no hub file)."""
    cfg = open_clip.get_pretrained_cfg(model, tag)
    hub = cfg.get("hf_hub") if cfg else None
    if not hub:
        return None
    repo, filename = os.path.split(str(hub))  # 'org/repo/' (default file) or 'org/repo/file'
    filename = filename or HF_WEIGHTS_NAME
    preprocess = {key: cfg[key] for key in _TAG_PREPROCESS_KEYS if cfg.get(key) is not None}
    return HubWeights(model, tag, repo, _candidates(filename), preprocess)


def _candidates(filename: str) -> tuple[str, ...]:
    """The file and, first, the safetensors file open_clip prefers in its place."""
    if filename == HF_WEIGHTS_NAME:
        return (HF_SAFE_WEIGHTS_NAME, filename)
    if filename.endswith((".bin", ".pth")):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def hub_unreachable() -> str | None:
    """Why the hub cannot be used now (None: it answers); ``HF_HUB_OFFLINE=1`` is a reason."""
    if hub_constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set, so nothing is downloaded"
    endpoint = hub_constants.ENDPOINT
    request = urllib.request.Request(endpoint, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=HUB_PROBE_TIMEOUT_S):
            return None
    except urllib.error.HTTPError:
        return None  # the hub answered (any status): it is reachable
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{endpoint} cannot be reached ({reason})"


def weights_file(weights: HubWeights) -> Path:
    """The local weights file: from the cache, else downloaded if the hub can be reached."""
    cached = weights.cached_file()
    if cached is not None:
        return cached
    why = hub_unreachable()
    if why is not None:
        raise ModelNotFoundError(missing_weights_message(weights, why))
    for name in weights.filenames:
        try:
            return Path(hf_hub_download(weights.repo, name, cache_dir=hub_constants.HF_HUB_CACHE))
        except RemoteEntryNotFoundError:
            continue  # open_clip's order: try the next candidate
        except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise ModelNotFoundError(missing_weights_message(weights, reason)) from exc
    raise ModelNotFoundError(
        missing_weights_message(weights, f"{weights.repo_url} has none of these files")
    )


def missing_weights_message(weights: HubWeights, why: str) -> str:
    """The whole message for weights that are not here and cannot be fetched: what to do."""
    return (
        f"The weights of {weights.label} are not on this machine and cannot be downloaded: "
        f"{why}. open_clip needs the file {weights.files_text} from the Hugging Face "
        f"repository {weights.repo} ({weights.repo_url}), looked for in the cache folder "
        f"{weights.cache_folder}. Download it on a machine with network access and pass it with "
        f"--checkpoint PATH (or MMRAG_CHECKPOINT=PATH), or copy that cache folder here; or use "
        f"the bundled model that needs no download: MMRAG_MODEL={OFFLINE_MODEL} "
        f"(--model {OFFLINE_MODEL})."
    )
