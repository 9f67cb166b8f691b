"""One prepared check of GPU ingest, for a machine with an NVIDIA GPU (not run in CI).

    python scripts/gpu_check.py --out docs/results/gpu_check_h200.json      # ~2-3 min on an H200
    python scripts/gpu_check.py --device cpu --images 64 --out /tmp/x.json  # a dry run anywhere

With ViT-B-32 (random weights in open_clip's layout: the same cost as trained ones) it reports:

* the CUDA defaults (``device='auto'`` is CUDA, ``precision='auto'`` bf16) and the text trim;
* ``model_only_images_per_s``: the bare model on 224 px inputs already on the device (bf16);
* ``stages``: each ingest stage alone, in images/s: read (file bytes), decode (OpenCV, one
  process per worker), preprocess (resize + normalise on the CPU), device decode + prepare
  (nvJPEG + torch, batches), embed (the embedder's batch call from CPU inputs) and write
  (Milvus Lite rows, flushed), so the slowest one is visible;
* ``end_to_end``: ``run_ingest`` from 640x480 JPEG files to flushed Milvus Lite rows, images/s,
  with CPU decoding in threads, in worker processes, and JPEGs decoded on the device;
* ``cosine``: per image, the device path (nvJPEG, torch resize, bf16) against the CPU path
  (OpenCV, CPU preprocessing, fp32 on the CPU): min and mean; >= 0.999 is required.

``ok`` is true when the cosines hold (and, on CUDA, the defaults); the throughput targets of
issue #19 (>= 5,000 images/s end to end, >= 0.5x the model-only rate) are reported as
``targets``, not asserted. Prints and writes one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest import IngestOptions, open_source, run_ingest
from ingest.decode_pool import DecodePool
from mmrag.bench.models import random_checkpoint
from retrieval.components import Components
from retrieval.config import Settings
from retrieval.demo.synthetic import caption_for, combinations, render_scene
from retrieval.embedders import create_embedder
from retrieval.embedders.gpu_decode import DeviceJpegDecoder, EncodedJpeg
from retrieval.embedders.open_clip import resolve_device
from retrieval.embedders.precision import resolve_precision
from retrieval.embedders.text_trim import encode_text_trimmed
from retrieval.imaging import decode_image
from retrieval.stores.milvus import MilvusStore
from retrieval.types import Modality, Record

MODEL = "ViT-B-32"


def scenes(n: int, size: int, seed: int = 0) -> list[np.ndarray]:
    """n synthetic photos (size wide, 3:4), RGB uint8."""
    rng = np.random.default_rng(seed)
    combos = combinations()
    return [render_scene(*combos[i % len(combos)], rng, size)[: size * 3 // 4] for i in range(n)]


def write_jpegs(folder: Path, images: list[np.ndarray], copies: int) -> list[Path]:
    """Each image written ``copies`` times (distinct files: a pixel differs) as JPEG q90."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for c in range(copies):
        for i, rgb in enumerate(images):
            path = folder / f"{c:04d}-{i:03d}.jpg"
            bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
            bgr[0, 0] = (c % 256, c // 256 % 256, 7)  # distinct bytes: each file its own row
            cv2.imwrite(str(path), bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])
            paths.append(path)
    return paths


def sync(device: str) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(fn: Callable[[], Any], count: int, device: str, repeat: int = 3) -> float:
    """Items/s of fn() (best of ``repeat`` after one warm-up)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - started)
    return count / best


def stage_rates(
    embedder: Any, paths: list[Path], workers: int, device: str, uri: str
) -> dict[str, float]:
    """Images/s of each ingest stage alone (see the module docstring)."""
    cfg = embedder.preprocess_config
    out: dict[str, float] = {}
    datas = [p.read_bytes() for p in paths]
    with ThreadPoolExecutor(workers) as pool:
        out["read"] = rate(lambda: list(pool.map(lambda p: p.read_bytes(), paths)), len(paths),
                           "cpu", 1)
    rgbs = [decode_image(d, min_side=embedder.decode_min_side) for d in datas[:256]]
    out["decode_1_core"] = rate(
        lambda: [decode_image(d, min_side=embedder.decode_min_side) for d in datas[:256]],
        256, "cpu", 1)
    out["preprocess_1_core"] = rate(lambda: [embedder.prepare_image(x) for x in rgbs], 256,
                                    "cpu", 1)
    decoder = DecodePool(workers, cfg, 50_000_000, embedder.decode_min_side, 2 * workers)
    with decoder, ThreadPoolExecutor(2 * workers) as pool:
        def run() -> None:
            list(pool.map(lambda d: decoder.decode(d, False), datas))

        out[f"decode_and_preprocess_{workers}_processes"] = rate(run, len(datas), "cpu", 1)
    jpegs = DeviceJpegDecoder(cfg, device)
    batch = [EncodedJpeg(d) for d in datas[: embedder.batch_size]]
    out["device_decode_and_preprocess"] = rate(
        lambda: jpegs.prepare_batch(batch), len(batch), device)
    prepared = [embedder.prepare_image(x) for x in rgbs[: embedder.batch_size]]
    out["embed_from_cpu_inputs"] = rate(
        lambda: embedder.embed_prepared(prepared), len(prepared), device)
    vectors = np.random.default_rng(0).normal(size=(len(paths), embedder.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with MilvusStore(uri, "write_stage") as store:
        store.ensure_collection(embedder.dim, embedder.model_id)
        rows = [Record(id=f"r{i}", vector=v, source=str(p), modality=Modality.IMAGE,
                       model_id=embedder.model_id)
                for i, (v, p) in enumerate(zip(vectors, paths, strict=True))]

        def write() -> None:
            for start in range(0, len(rows), 256):
                store.upsert(rows[start : start + 256])
            store.flush()

        out["write"] = rate(write, len(rows), "cpu", 1)
        store.drop()
    return {k: round(v, 1) for k, v in out.items()}


def end_to_end(
    embedder: Any, folder: Path, uri: str, name: str, workers: int, **settings: str
) -> dict[str, Any]:
    """run_ingest from JPEG files to flushed Lite rows with these settings; images/s."""
    config = Settings(uri=uri, collection=name, model=MODEL, pretrained=None,
                      device=embedder.device, batch_size=embedder.batch_size, **settings)
    store = MilvusStore(uri, name)
    components = Components(config, store, _embedder=embedder)
    options = IngestOptions(batch_size=embedder.batch_size, workers=workers, fetch_workers=8,
                            insert_batch_size=1024, dedup_batch_size=256)
    try:
        summary = run_ingest(components, open_source(folder), options)
        count = store.count()
        store.drop()
    finally:
        components.close()
    return {"images_per_s": round(summary.throughput, 1), "ingested": summary.ingested,
            "rejected": summary.rejected, "stored": count, "elapsed_s": round(summary.elapsed_s, 2),
            **settings}


def cosines(gpu: Any, cpu32: Any, datas: list[bytes]) -> dict[str, float]:
    """Per image: the device path (device JPEG decode, its precision) vs the CPU fp32 path."""
    jpegs = DeviceJpegDecoder(gpu.preprocess_config, gpu.device)
    device = gpu.embed_prepared(jpegs.prepare_batch([EncodedJpeg(d) for d in datas]))
    cpu = cpu32.embed_images([decode_image(d, min_side=cpu32.decode_min_side) for d in datas])
    per_image = (device * cpu).sum(axis=1)
    return {"min": float(per_image.min()), "mean": float(per_image.mean()),
            "images": len(datas)}


def cuda_defaults(ckpt: Path, report: dict[str, Any]) -> bool:
    """device/precision 'auto' on CUDA, and the exact text trim there; True when they hold."""
    report["device_auto"] = resolve_device("auto")
    report["precision_auto"] = resolve_precision("auto", report["device_auto"])
    gpu32 = create_embedder(MODEL, checkpoint=ckpt, device="cuda", precision="fp32")
    texts = [caption_for(*c) for c in combinations()[:16]]
    tokens = gpu32.tokenizer(texts).cuda()
    with torch.inference_mode():
        full = gpu32.model.encode_text(tokens).float()
        trimmed = encode_text_trimmed(gpu32.model, tokens).float()
    report["trim_max_abs_diff_fp32_cuda"] = float((full - trimmed).abs().max())
    return (report["device_auto"] == "cuda" and report["precision_auto"] in ("bf16", "fp16")
            and report["trim_max_abs_diff_fp32_cuda"] < 1e-3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check.json", help="where the JSON report goes")
    parser.add_argument("--images", type=int, default=8192,
                        help="640x480 JPEG files of the end-to-end runs (default 8192)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a "
                        "dry run of the script")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="images per model call (default 256 on CUDA, 32 on the CPU)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    args.batch_size = args.batch_size or (256 if device.startswith("cuda") else 32)
    cores = os.cpu_count() or 2
    workers = max(1, cores - 2)
    report: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                              "gpu": torch.cuda.get_device_name(0) if device != "cpu" else None,
                              "cpu_cores": cores, "device": device, "model": MODEL,
                              "images": args.images, "decode_workers": workers}
    ckpt = random_checkpoint(MODEL)
    ok = cuda_defaults(ckpt, report) if device.startswith("cuda") else True
    gpu = create_embedder(MODEL, checkpoint=ckpt, device=device, batch_size=args.batch_size)
    cpu32 = create_embedder(MODEL, checkpoint=ckpt, device="cpu", precision="fp32")
    report["embedder"] = repr(gpu)
    x = torch.randn(args.batch_size, 3, 224, 224, device=device).to(gpu.input_dtype)
    with torch.inference_mode():
        report["model_only_images_per_s"] = round(
            rate(lambda: gpu.model.encode_image(x), args.batch_size, device), 1)
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "check.db")
        copies = max(1, args.images // 64)
        paths = write_jpegs(Path(tmp) / "jpegs", scenes(64, 640, seed=1), copies)
        report["cosine"] = cosines(gpu, cpu32, [p.read_bytes() for p in paths[:64]])
        report["stages"] = stage_rates(gpu, paths[: min(len(paths), 2048)], workers, device, uri)
        runs = {"threads": {"decode_workers": "0", "jpeg_decoder": "cpu"},
                "processes": {"decode_workers": str(workers), "jpeg_decoder": "cpu"},
                "device_jpegs": {"decode_workers": "0", "jpeg_decoder": "device"}}
        report["end_to_end"] = {
            name: end_to_end(gpu, Path(tmp) / "jpegs", uri, f"e2e_{name}", 2 * workers, **changes)
            for name, changes in runs.items()
        }
    best = max(run["images_per_s"] for run in report["end_to_end"].values())
    report["targets"] = {
        "end_to_end_images_per_s_ge_5000": best >= 5000,
        "end_to_end_ge_half_model_only": best >= 0.5 * report["model_only_images_per_s"],
    }
    ok = ok and report["cosine"]["min"] >= 0.999 and all(
        run["stored"] == run["ingested"] == len(paths) for run in report["end_to_end"].values())
    report["ok"] = ok
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
