"""Train the mmrag-demo open_clip model on freshly generated synthetic scenes."""

from __future__ import annotations

import argparse
import json
import math
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import open_clip
import torch
from open_clip.loss import ClipLoss
from PIL import Image

from retrieval.demo.evaluate import EVAL_SEED, GALLERY_SIZE, precision_at_k
from retrieval.demo.model import DEMO_MODEL_CONFIG, register_demo_config, save_fp16, write_config
from retrieval.demo.paths import ASSETS_DIR, DEMO_MODEL_NAME
from retrieval.demo.synthetic import HELD_OUT, generate_dataset

RENDER_SIZES = (64, 96, 128)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ASSETS_DIR)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--init-temperature", type=float, default=0.07)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--eval-gallery", type=int, default=GALLERY_SIZE)
    parser.add_argument("--eval-seed", type=int, default=EVAL_SEED)
    parser.add_argument("--log-every", type=int, default=100)
    return parser.parse_args(argv)


def learning_rate(step: int, steps: int, base: float, warmup: int) -> float:
    """Linear warmup then cosine decay to zero."""
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * base * (1.0 + math.cos(math.pi * progress))


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW as open_clip trains: no decay on gains, biases and the logit scale."""
    decay: list[torch.nn.Parameter] = []
    plain: list[torch.nn.Parameter] = []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name
        (plain if skip else decay).append(param)
    groups = [
        {"params": plain, "weight_decay": 0.0},
        {"params": decay, "weight_decay": weight_decay},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)


def train(args: argparse.Namespace, command: str = "") -> dict[str, object]:
    """Train, evaluate and save config, fp16 weights and a training record under args.out."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    config_path = write_config(args.out / f"{DEMO_MODEL_NAME}.json")
    register_demo_config(config_path, force=True)
    model, _, preprocess = open_clip.create_model_and_transforms(
        DEMO_MODEL_NAME, output_dict=True, init_logit_scale=math.log(1.0 / args.init_temperature)
    )
    tokenizer = open_clip.get_tokenizer(DEMO_MODEL_NAME)
    loss_fn = ClipLoss()
    optimizer = make_optimizer(model, args.lr, args.weight_decay)
    model.train()
    started = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        size = RENDER_SIZES[int(np.random.default_rng([args.seed, step, 1]).integers(3))]
        batch = generate_dataset(args.batch, [args.seed, step], size, vary_captions=True)
        images = torch.stack([preprocess(Image.fromarray(s.image)) for s in batch])
        texts = tokenizer([s.caption for s in batch])
        out = model(images, texts)
        loss = loss_fn(out["image_features"], out["text_features"], out["logit_scale"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % args.log_every == 0 or step == args.steps - 1:
            scale = model.logit_scale.exp().item()
            elapsed = time.perf_counter() - started
            message = f"step {step:4d} loss {loss.item():.4f} scale {scale:.1f} {elapsed:.0f}s"
            print(message, flush=True)
    seconds = time.perf_counter() - started
    precision = precision_at_k(model, preprocess, tokenizer, args.eval_gallery, args.eval_seed)
    weights_path = save_fp16(model, args.out / f"{DEMO_MODEL_NAME}.safetensors")
    record: dict[str, object] = {
        "model": DEMO_MODEL_NAME,
        "command": command,
        "seed": args.seed,
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "warmup": args.warmup,
        "weight_decay": args.weight_decay,
        "init_temperature": args.init_temperature,
        "render_sizes": list(RENDER_SIZES),
        "threads": args.threads,
        "train_seconds": round(seconds, 1),
        "held_out": sorted(f"{c} {s}" for c, s in HELD_OUT),
        "precision": asdict(precision),
        "weights_bytes": weights_path.stat().st_size,
        "config": DEMO_MODEL_CONFIG,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "machine": platform.machine(),
    }
    record_path = args.out / f"{DEMO_MODEL_NAME}.train.json"
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return record


def main(argv: Sequence[str] | None = None) -> None:
    """Run training from the command line and print the precision summary."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    record = train(parse_args(args_list), "python -m retrieval.demo.train " + shlex.join(args_list))
    precision = record["precision"]
    assert isinstance(precision, dict)
    print(f"trained precision@5 {precision['trained']:.3f}  held-out {precision['held_out']:.3f}  "
          f"in {record['train_seconds']}s; wrote {record['weights_bytes']} bytes")


if __name__ == "__main__":
    main()
