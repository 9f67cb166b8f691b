"""clip-retrieval's ``clip_inference`` over a folder, timed: run with clip-retrieval's own venv.

Standalone on purpose (the standard library, numpy and clip-retrieval only): ``mmrag bench
--peers`` runs it as ``<venv>/bin/python -I clip_retrieval_child.py FOLDER OUT MODEL CHECKPOINT
BATCH WORKERS``. The checkpoint goes in through clip-retrieval's own loading path: its
``open_clip:NAME/PRETRAINED`` model string hands everything after the first ``/`` to
``open_clip.create_model_and_transforms(pretrained=...)``, which loads a local file, so
``open_clip:ViT-B-32//abs/path.safetensors`` loads the bench's weights with no patch. The model
is loaded (and warmed up, as clip-retrieval does) before the clock starts, through the same
cached ``all_clip.load_clip`` call clip-retrieval's worker makes, so the run reuses it. The
images counted are the embeddings written to ``OUT/img_emb/*.npy``. Prints one line:
``MMRAG-PEER-RESULT {"images": N, "run_s": S, ...}``.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import time


def main(argv: list[str]) -> int:
    folder, out, model, checkpoint, batch, workers = argv
    import numpy as np
    from all_clip import load_clip
    from clip_retrieval.clip_inference.main import main as clip_inference

    clip_model = f"open_clip:{model}/{checkpoint}"
    load_started = time.perf_counter()
    load_clip(clip_model=clip_model, use_jit=False, warmup_batch_size=int(batch),
              clip_cache_path=None)  # the worker's own call: cached, so the run reuses it
    load_s = time.perf_counter() - load_started
    started = time.perf_counter()
    clip_inference(
        input_dataset=folder, output_folder=out, input_format="files", batch_size=int(batch),
        num_prepro_workers=int(workers), enable_text=False, enable_image=True,
        enable_metadata=False, clip_model=clip_model, use_jit=False, enable_wandb=False,
    )
    run_s = time.perf_counter() - started
    files = sorted(glob.glob(os.path.join(out, "img_emb", "*.npy")))
    images = sum(int(np.load(f, mmap_mode="r").shape[0]) for f in files)
    print("\nMMRAG-PEER-RESULT " + json.dumps({  # its logger leaves a line open
        "images": images, "run_s": run_s, "load_s": load_s, "precision": "fp32",
        "embedding_files": len(files),
    }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
