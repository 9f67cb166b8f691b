"""Data laid out as the towhee notebooks have it, and weights cached where open_clip keeps them.

``reverse_image_search.csv`` has the notebooks' columns (``id,path,label``) over small real
JPEG files. ``cache_open_clip_weights`` writes randomly initialised weights of an open_clip
model into a HuggingFace cache folder exactly where ``open_clip.create_model(name,
pretrained=tag)`` downloads them, so a towhee model name loads offline (HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import open_clip
import torch
from safetensors.torch import save_file

from tests.support.images import write_image_files

LABELS = ("goldfish", "dog", "cat")
SNAPSHOT_FILE = "open_clip_model.safetensors"  # open_clip tries it before the .bin


def write_image_csv(folder: Path, count: int) -> Path:
    """``reverse_image_search.csv`` (id,path,label) over ``count`` JPEG files in ``folder``."""
    files = write_image_files(folder / "train", count, ext=".JPEG")
    csv_path = folder / "reverse_image_search.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "label"])
        for i, path in enumerate(files):
            writer.writerow([i, str(path), LABELS[i % len(LABELS)]])
    return csv_path


def hf_cache_path(hf_home: Path, model: str, tag: str) -> Path:
    """Where huggingface_hub keeps open_clip's weights file of (model, tag) under HF_HOME."""
    hub = open_clip.get_pretrained_cfg(model, tag)["hf_hub"]
    repo_id, filename = hub.rstrip("/"), ""
    if not hub.endswith("/"):  # 'org/name/file': open_clip asks for that file
        repo_id, filename = hub.rsplit("/", 1)
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    return snapshot / (filename.replace("pytorch_model.bin", "model.safetensors") or SNAPSHOT_FILE)


def cache_open_clip_weights(hf_home: Path, model: str, tag: str, seed: int = 0) -> Path:
    """Random fp16 weights of ``model`` saved where ``pretrained=tag`` is downloaded to."""
    target = hf_cache_path(hf_home, model, tag)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = open_clip.create_model(model)
    state = {k: v.detach().half().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(target))
    return target
