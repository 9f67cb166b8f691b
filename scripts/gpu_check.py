"""One prepared check of the CUDA path, for a machine with an NVIDIA GPU (not run in CI).

    python scripts/gpu_check.py --out gpu_check.json

Checks that ``device='auto'`` picks CUDA and ``precision='auto'`` picks bf16 there, that GPU
embeddings (bf16 and fp32) agree with CPU fp32 ones (cosine >= 0.999) and that the text padding
trim stays exact on CUDA; then measures ViT-B-32 (random weights: same cost as trained) image and
text throughput and the decode -> prepare -> embed pipeline (mmrag's ``pipe`` with decode
workers), with and without draft JPEG decoding. Prints and writes one JSON report.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mmrag.bench.models import random_checkpoint
from pipelines import pipe
from retrieval.demo.synthetic import caption_for, combinations, render_scene
from retrieval.embedders import create_embedder
from retrieval.embedders.open_clip import resolve_device
from retrieval.embedders.precision import resolve_precision
from retrieval.embedders.text_trim import encode_text_trimmed
from retrieval.imaging import decode_image


def scenes(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """n synthetic photos (size wide, 3:4), RGB uint8."""
    rng = np.random.default_rng(seed)
    combos = combinations()
    return [render_scene(*combos[i % len(combos)], rng, size)[: size * 3 // 4] for i in range(n)]


def write_jpegs(folder: Path, images: list[np.ndarray], copies: int) -> list[Path]:
    """Each image written ``copies`` times (distinct files) as JPEG quality 90."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(copies):
        for i, rgb in enumerate(images):
            path = folder / f"{c:03d}-{i:03d}.jpg"
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            paths.append(path)
    return paths


def rate(fn: Any, count: int, repeat: int = 3) -> float:
    """Items/s of fn() (best of ``repeat`` after one warm-up), synchronising CUDA."""
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - started)
    return count / best


def pipeline_rate(embedder: Any, paths: list[Path], workers: int, draft: bool) -> float:
    """Images/s of read -> decode (+draft) -> prepare on workers -> batched GPU embed."""
    min_side = embedder.decode_min_side if draft else None

    def load(path: Path) -> np.ndarray:
        return embedder.prepare_image(decode_image(path.read_bytes(), min_side=min_side))

    flow = (
        pipe.input("path")
        .map("path", "x", load, config={"workers": workers})
        .map("x", "vec", embedder.embed_prepared, config={"batch_size": embedder.batch_size})
        .output("vec")
    )
    started = time.perf_counter()
    count = sum(1 for _ in flow.stream(paths))
    torch.cuda.synchronize()
    return count / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json")
    parser.add_argument("--images", type=int, default=2048)
    args = parser.parse_args()
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
    report["gpu"] = torch.cuda.get_device_name(0)
    report["cpu_cores"] = os.cpu_count()
    report["device_auto"] = resolve_device("auto")
    report["precision_auto"] = resolve_precision("auto", report["device_auto"])
    ckpt = random_checkpoint("ViT-B-32")
    gpu = create_embedder("ViT-B-32", checkpoint=ckpt, device="auto", batch_size=256)
    gpu32 = create_embedder("ViT-B-32", checkpoint=ckpt, device="cuda", precision="fp32",
                            batch_size=256)
    cpu32 = create_embedder("ViT-B-32", checkpoint=ckpt, device="cpu", precision="fp32")
    report["embedder"] = repr(gpu)
    images, texts = scenes(16, 640), [caption_for(*c) for c in combinations()[:16]]
    ref_i, ref_t = cpu32.embed_images(images), cpu32.embed_texts(texts)
    for name, emb in (("gpu_auto", gpu), ("gpu_fp32", gpu32)):
        report[f"{name}_min_cos_images"] = float((emb.embed_images(images) * ref_i).sum(1).min())
        report[f"{name}_min_cos_texts"] = float((emb.embed_texts(texts) * ref_t).sum(1).min())
    tokens = gpu32.tokenizer(texts).cuda()
    with torch.inference_mode():
        full = gpu32.model.encode_text(tokens).float()
        trimmed = encode_text_trimmed(gpu32.model, tokens).float()
    report["trim_max_abs_diff_fp32_cuda"] = float((full - trimmed).abs().max())

    x = torch.randn(256, 3, 224, 224, device="cuda")
    with torch.inference_mode():
        for name, emb in (("bf16", gpu), ("fp32", gpu32)):
            encode = functools.partial(emb.model.encode_image, x.to(emb.input_dtype))
            report[f"bare_images_per_s_{name}_b256"] = rate(encode, 256)
    one = ["a red dog on the grass"]
    report["text_ms_b1"] = 1000.0 / rate(lambda: gpu.embed_texts(one), 1, 10)
    batch_texts = [f"a photo number {i} of a red dog" for i in range(256)]
    report["texts_per_s_b256"] = rate(lambda: gpu.embed_texts(batch_texts), 256)

    workers = max(1, (os.cpu_count() or 2) - 2)
    with tempfile.TemporaryDirectory() as tmp:
        small = write_jpegs(Path(tmp) / "small", scenes(64, 640, seed=1), args.images // 64)
        big = write_jpegs(Path(tmp) / "big", scenes(16, 3000, seed=2), 8)
        report["pipeline_workers"] = workers
        report["pipeline_640x480_images_per_s"] = pipeline_rate(gpu, small, workers, draft=True)
        report["pipeline_3000x2250_images_per_s_full_decode"] = pipeline_rate(
            gpu, big, workers, draft=False)
        report["pipeline_3000x2250_images_per_s_draft_decode"] = pipeline_rate(
            gpu, big, workers, draft=True)
    ok = (report["device_auto"] == "cuda" and report["precision_auto"] in ("bf16", "fp16")
          and min(report["gpu_auto_min_cos_images"], report["gpu_auto_min_cos_texts"]) >= 0.999
          and report["trim_max_abs_diff_fp32_cuda"] < 1e-3)
    report["ok"] = ok
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
