"""Text-to-image precision@k of a model on a fresh seeded synthetic gallery."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from retrieval.demo.paths import WEIGHTS_PATH
from retrieval.demo.synthetic import (
    DEFAULT_FILE_SIZE,
    HELD_OUT,
    caption_for,
    combinations,
    generate_dataset,
)

EVAL_SEED = 20_240_601
GALLERY_SIZE = 400


@dataclass(frozen=True)
class Precision:
    """Mean precision@k of core-caption queries, split by trained and held-out combinations."""

    k: int
    gallery_size: int
    seed: int
    trained: float
    held_out: float
    per_query: dict[str, float]


@torch.no_grad()
def embed_images(
    model: Any,
    preprocess: Callable[[Any], torch.Tensor],
    images: Sequence[np.ndarray],
    batch_size: int = 200,
) -> torch.Tensor:
    """Unit image vectors of RGB uint8 arrays, through the model's inference transform."""
    chunks = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = torch.stack([preprocess(Image.fromarray(im)) for im in chunk])
        chunks.append(model.encode_image(batch, normalize=True))
    return torch.cat(chunks)


@torch.no_grad()
def embed_texts(
    model: Any, tokenizer: Callable[..., torch.Tensor], texts: Sequence[str]
) -> torch.Tensor:
    """Unit text vectors."""
    return model.encode_text(tokenizer(list(texts)), normalize=True)


def precision_at_k(
    model: Any,
    preprocess: Callable[[Any], torch.Tensor],
    tokenizer: Callable[..., torch.Tensor],
    gallery_size: int = GALLERY_SIZE,
    seed: int = EVAL_SEED,
    k: int = 5,
    size: int = DEFAULT_FILE_SIZE,
) -> Precision:
    """For each of the 40 combinations query "a <colour> <shape>"; score the top-k of a gallery."""
    was_training = model.training
    model.eval()
    gallery = generate_dataset(gallery_size, seed, size, include_held_out=True)
    image_vectors = embed_images(model, preprocess, [s.image for s in gallery])
    pairs = combinations(include_held_out=True)
    queries = [caption_for(colour, shape) for colour, shape in pairs]
    scores = embed_texts(model, tokenizer, queries) @ image_vectors.T
    top = scores.topk(k, dim=1).indices.tolist()
    per_query = {
        query: sum(gallery[i].scene.combo == pair for i in row) / k
        for query, pair, row in zip(queries, pairs, top, strict=True)
    }
    trained = [p for q, p in zip(pairs, per_query.values(), strict=True) if q not in HELD_OUT]
    held = [p for q, p in zip(pairs, per_query.values(), strict=True) if q in HELD_OUT]
    model.train(was_training)
    return Precision(
        k, gallery_size, seed, float(np.mean(trained)), float(np.mean(held)), per_query
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Evaluate a demo checkpoint and print the precision as JSON."""
    from retrieval.demo.model import load_demo_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path, default=WEIGHTS_PATH)
    parser.add_argument("--gallery", type=int, default=GALLERY_SIZE)
    parser.add_argument("--seed", type=int, default=EVAL_SEED)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    demo = load_demo_model(args.weights)
    result = precision_at_k(
        demo.model, demo.preprocess, demo.tokenizer, args.gallery, args.seed, args.k
    )
    print(json.dumps(asdict(result), indent=2))


if __name__ == "__main__":
    main()
