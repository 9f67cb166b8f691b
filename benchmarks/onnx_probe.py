"""Probe: does ONNX Runtime beat mmrag's CPU path for the open_clip ViT-B-32 towers? (issue #7)

Standalone (not part of the package). Builds a random-init ViT-B-32 (seed 0), exports the image
tower and the text tower to ONNX with a dynamic batch axis (``torch.onnx.export(dynamo=True)``,
falling back to ``dynamo=False``), optionally quantizes the image tower to dynamic int8, then
times, back to back and interleaved, the variants below on the same inputs and reports the median
of several repeats with each variant's minimum cosine to the PyTorch fp32 embeddings:

* ``pytorch fp32``:   ``open_clip.create_model(name)``;
* ``pytorch bf16``:   ``open_clip.create_model(name, precision='bf16')``, inputs cast to bf16
  (mmrag's default on CPUs with AMX / AVX512-BF16);
* ``pytorch bf16 + trim`` (text only): bf16 plus mmrag's exact padding trim
  (``retrieval/embedders/text_trim.py``), i.e. what ``OpenClipEmbedder`` really runs for texts;
* ``pytorch fp32 + trim`` (text only): the same trim in fp32, to separate ORT's gain from fp32's;
* ``ort fp32``:       onnxruntime CPUExecutionProvider, ORT_ENABLE_ALL, intra_op threads = N;
* ``ort fp32 + trim`` (text only): a second text export with a dynamic sequence axis, fed the
  same trimmed token batch as the PyTorch trim path;
* ``ort int8``:       ``onnxruntime.quantization.quantize_dynamic`` of the image tower (QInt8).

Cosines are measured on rendered synthetic scenes (``retrieval.demo.synthetic``) prepared by
mmrag's own ``preprocess_image`` and on their captions; timings use random inputs (cost only).

Usage::

    .venv/bin/python benchmarks/onnx_probe.py --out /tmp/onnx_probe.json > /tmp/onnx_probe.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import open_clip
import torch
from torch import nn

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a plain script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from retrieval.demo.synthetic import combinations, render_scene  # noqa: E402
from retrieval.embedders.precision import cpu_bf16_units  # noqa: E402
from retrieval.embedders.preprocess import PreprocessConfig, preprocess_image  # noqa: E402
from retrieval.embedders.text_trim import (  # noqa: E402
    encode_text_prefix,
    text_encoder,
    trimmed_length,
)

MODEL_NAME = "ViT-B-32"
COSINE_BAR = 0.999
Encode = Callable[[], np.ndarray]


class ImageTower(nn.Module):
    """``model.encode_image`` as its own module, for export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(image)  # type: ignore[operator]


class TextTower(nn.Module):
    """``model.encode_text`` on a full [B, 77] int64 token batch, for export."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(tokens)  # type: ignore[operator]


class TrimmedTextTower(nn.Module):
    """``encode_text`` on a token batch already cut to its longest EOT + 1 (text_trim.py).

    The length comes from the input's shape, not from the data, so it exports with a dynamic
    sequence axis.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return encode_text_prefix(self.model, tokens)


@dataclass
class ExportInfo:
    """How one tower's export went."""

    tower: str
    path: str = ""
    mode: str = ""  # "dynamo" or "torchscript"; empty when both failed
    seconds: float = 0.0
    size_mb: float = 0.0
    warnings: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class Row:
    """One variant on one workload."""

    workload: str
    variant: str
    batch: int
    times_ms: list[float]
    min_cosine: float | None
    calls_per_sample: int = 1

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")

    @property
    def per_second(self) -> float:
        return 1000.0 * self.batch / self.median_ms if self.times_ms else float("nan")


def export_tower(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    *,
    input_name: str,
    dynamic_dims: dict[int, tuple[str, int, int]],
    tower: str,
) -> ExportInfo:
    """Export with dynamo=True, falling back to dynamo=False; record which worked and why not."""
    info = ExportInfo(tower=tower)
    for mode in ("dynamo", "torchscript"):
        target = path.with_name(f"{path.stem}.{mode}.onnx")
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                if mode == "dynamo":
                    dims = {
                        axis: torch.export.Dim(name, min=low, max=high)
                        for axis, (name, low, high) in dynamic_dims.items()
                    }
                    torch.onnx.export(
                        module, (example,), str(target), dynamo=True,
                        input_names=[input_name], output_names=["features_out"],
                        dynamic_shapes={input_name: dims},
                    )
                else:
                    axes = {axis: name for axis, (name, _low, _high) in dynamic_dims.items()}
                    torch.onnx.export(
                        module, (example,), str(target), dynamo=False,
                        input_names=[input_name], output_names=["features_out"],
                        dynamic_axes={input_name: axes, "features_out": {0: "batch"}},
                        opset_version=17,
                    )
            except Exception as exc:  # noqa: BLE001 - any exporter failure means: try the next mode
                info.errors[mode] = f"{type(exc).__name__}: {exc}"[:2000]
                info.warnings.extend(_warning_lines(caught))
                traceback.print_exc(file=sys.stderr)
                continue
        info.warnings.extend(_warning_lines(caught))
        info.mode, info.path = mode, str(target)
        info.seconds = time.perf_counter() - started
        info.size_mb = _onnx_size_mb(target)
        return info
    return info


def _warning_lines(caught: Sequence[warnings.WarningMessage]) -> list[str]:
    """Distinct warning texts, shortened."""
    lines: list[str] = []
    for item in caught:
        text = f"{item.category.__name__}: {str(item.message).splitlines()[0][:300]}"
        if text not in lines:
            lines.append(text)
    return lines


def _onnx_size_mb(path: Path) -> float:
    """The model file plus any external-data files next to it, in MB."""
    total = sum(p.stat().st_size for p in path.parent.glob(f"{path.name}*"))
    return round(total / 1e6, 1)


def ort_session(path: str, threads: int, *, spinning: bool) -> ort.InferenceSession:
    """A CPU session: all graph optimisations, N intra-op threads, sequential execution."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def ort_runner(session: ort.InferenceSession) -> Callable[[np.ndarray], np.ndarray]:
    """array in, float32 embeddings out."""
    name = session.get_inputs()[0].name

    def run(array: np.ndarray) -> np.ndarray:
        return np.asarray(session.run(None, {name: array})[0], dtype=np.float32)

    return run


def torch_runner(
    encode: Callable[[torch.Tensor], torch.Tensor], dtype: torch.dtype | None = None
) -> Callable[[np.ndarray], np.ndarray]:
    """array in (cast to dtype inside the timed call, as the embedder does), fp32 numpy out."""

    def run(array: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(array)
            if dtype is not None:
                inputs = inputs.to(dtype)
            return encode(inputs).float().numpy()

    return run


def min_cosine(reference: np.ndarray, other: np.ndarray) -> float:
    """The smallest row-wise cosine between two embedding matrices."""
    a = reference / np.linalg.norm(reference, axis=1, keepdims=True)
    b = other / np.linalg.norm(other, axis=1, keepdims=True)
    return float(np.min(np.sum(a * b, axis=1)))


def time_interleaved(
    calls: dict[str, Encode], repeats: int, warmup: int, inner: int
) -> dict[str, list[float]]:
    """Per variant, `repeats` samples of the mean ms of `inner` calls; variants interleaved.

    Each round runs every variant once, the starting variant rotating from round to round so
    no variant always follows the same neighbour.
    """
    names = list(calls)
    for _ in range(warmup):
        for name in names:
            calls[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        order = names[round_index % len(names):] + names[: round_index % len(names)]
        for name in order:
            started = time.perf_counter()
            for _ in range(inner):
                calls[name]()
            samples[name].append(1000.0 * (time.perf_counter() - started) / inner)
    return samples


def scene_images(count: int, cfg: PreprocessConfig) -> tuple[np.ndarray, list[str]]:
    """`count` rendered scenes through mmrag's preprocessing, and their captions."""
    rng = np.random.default_rng(0)
    pairs = combinations(include_held_out=True)
    images, captions = [], []
    for index in range(count):
        colour, shape = pairs[index % len(pairs)]
        images.append(preprocess_image(render_scene(colour, shape, rng), cfg))
        captions.append(f"a photo of a {colour} {shape} on a plain background")
    return np.stack(images).astype(np.float32), captions


def quantize_image_tower(source: str, target: Path) -> tuple[str, str]:
    """Dynamic int8 (QInt8 weights, per-tensor) of the exported image tower: (path, error)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        quantize_dynamic(source, str(target), weight_type=QuantType.QInt8)
    except Exception as exc:  # noqa: BLE001 - reported, not fatal: int8 is optional
        traceback.print_exc(file=sys.stderr)
        return "", f"{type(exc).__name__}: {exc}"[:2000]
    return str(target), ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="JSON results path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--image-batch", type=int, default=32)
    parser.add_argument("--text-batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--scenes", type=int, default=16, help="images/captions for cosines")
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 image tower")
    parser.add_argument("--no-spinning", action="store_true", help="ORT threads do not spin")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the .onnx files here")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    torch.manual_seed(0)
    fp32 = open_clip.create_model(MODEL_NAME).eval()
    torch.manual_seed(0)
    bf16 = open_clip.create_model(MODEL_NAME, precision="bf16").eval()
    bf16.load_state_dict(fp32.state_dict())  # the very same weights, rounded to bf16
    tokenizer = open_clip.get_tokenizer(MODEL_NAME)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="onnx_probe_"))
    workdir.mkdir(parents=True, exist_ok=True)
    exports: list[ExportInfo] = []
    with torch.no_grad():
        exports.append(export_tower(
            ImageTower(fp32).eval(), torch.randn(2, 3, 224, 224), workdir / "image.onnx",
            input_name="image", dynamic_dims={0: ("batch", 1, 1024)}, tower="image",
        ))
        exports.append(export_tower(
            TextTower(fp32).eval(), tokenizer(["a photo", "a red circle"]), workdir / "text.onnx",
            input_name="tokens", dynamic_dims={0: ("batch", 1, 1024)}, tower="text",
        ))
        trimmed_example = tokenizer(["a photo of a cat", "a red circle on grey"])[:, :8]
        exports.append(export_tower(
            TrimmedTextTower(fp32).eval(), trimmed_example, workdir / "text_trim.onnx",
            input_name="tokens", dynamic_dims={0: ("batch", 1, 1024), 1: ("seq", 2, 77)},
            tower="text_trim",
        ))
    by_tower = {info.tower: info for info in exports}
    for info in exports:
        print(f"export {info.tower}: mode={info.mode or 'FAILED'} {info.seconds:.1f}s "
              f"{info.size_mb} MB errors={list(info.errors)}", file=sys.stderr)
    if not by_tower["image"].mode and not by_tower["text"].mode:
        _write(args.out, {"exports": [asdict(e) for e in exports], "rows": []})
        print("export failed in both modes for both towers; see the JSON", file=sys.stderr)
        return 1

    spinning = not args.no_spinning
    sessions: dict[str, ort.InferenceSession] = {}
    for tower in ("image", "text", "text_trim"):
        if by_tower[tower].mode:
            sessions[tower] = ort_session(by_tower[tower].path, args.threads, spinning=spinning)
    int8_error = ""
    if "image" in sessions and not args.no_int8:
        int8_path, int8_error = quantize_image_tower(
            by_tower["image"].path, workdir / "image.int8.onnx"
        )
        if int8_path:
            sessions["image_int8"] = ort_session(int8_path, args.threads, spinning=spinning)

    # Image variants: numpy float32 NCHW in, fp32 embeddings out.
    image_runs: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "pytorch fp32": torch_runner(fp32.encode_image),
        "pytorch bf16 (mmrag default)": torch_runner(bf16.encode_image, torch.bfloat16),
    }
    if "image" in sessions:
        image_runs["ort fp32"] = ort_runner(sessions["image"])
    if "image_int8" in sessions:
        image_runs["ort int8 (dynamic)"] = ort_runner(sessions["image_int8"])
    # Text variants: int64 [B, 77] tokens in; trim variants cut them as the embedder does.
    bf16_trim = text_encoder(bf16, trim=True)

    def trimmed(run: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
        def call(tokens: np.ndarray) -> np.ndarray:
            length = trimmed_length(torch.from_numpy(tokens))
            return run(np.ascontiguousarray(tokens[:, :length]))
        return call

    text_runs: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "pytorch fp32": torch_runner(fp32.encode_text),
        "pytorch bf16": torch_runner(bf16.encode_text),
        "pytorch bf16 + trim (mmrag default)": torch_runner(bf16_trim),
        "pytorch fp32 + trim": torch_runner(text_encoder(fp32, trim=True)),
    }
    if "text" in sessions:
        text_runs["ort fp32"] = ort_runner(sessions["text"])
    if "text_trim" in sessions:
        text_runs["ort fp32 + trim"] = trimmed(ort_runner(sessions["text_trim"]))

    # Cosines against PyTorch fp32 on real-ish inputs.
    cfg = PreprocessConfig()
    scenes, captions = scene_images(args.scenes, cfg)
    caption_tokens = tokenizer(captions).numpy()
    image_ref = image_runs["pytorch fp32"](scenes)
    image_cos = {name: min_cosine(image_ref, run(scenes)) for name, run in image_runs.items()}
    text_ref = text_runs["pytorch fp32"](caption_tokens)
    text_cos = {name: min_cosine(text_ref, run(caption_tokens)) for name, run in text_runs.items()}
    batch_one = {  # the dynamic batch axis really is dynamic: batch 1 through every variant
        name: min_cosine(image_ref[:1], run(scenes[:1])) for name, run in image_runs.items()
    }

    rows: list[Row] = []
    rng = np.random.default_rng(1)
    images = rng.standard_normal((args.image_batch, 3, 224, 224)).astype(np.float32)
    samples = time_interleaved(
        {name: partial(run, images) for name, run in image_runs.items()},
        args.repeats, args.warmup, inner=1,
    )
    rows += [Row(f"image b{args.image_batch}", name, args.image_batch, samples[name],
                 image_cos[name]) for name in image_runs]
    for batch in args.text_batches:
        texts = [captions[i % len(captions)] for i in range(batch)]
        tokens = tokenizer(texts).numpy()
        inner = max(1, 16 // batch)  # short calls: average several per sample
        samples = time_interleaved(
            {name: partial(run, tokens) for name, run in text_runs.items()},
            args.repeats, args.warmup, inner=inner,
        )
        rows += [Row(f"text b{batch}", name, batch, samples[name], text_cos[name], inner)
                 for name in text_runs]
    load_after = os.getloadavg()

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "onnxruntime": ort.__version__,
        "onnx": __import__("onnx").__version__,
        "cpu_bf16_units": cpu_bf16_units(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "ort_spinning": spinning,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "repeats": args.repeats,
        "trimmed_caption_length": trimmed_length(torch.from_numpy(caption_tokens)),
    }
    result = {
        "env": env,
        "exports": [asdict(e) for e in exports],
        "int8_error": int8_error,
        "batch1_image_min_cosine": batch_one,
        "rows": [
            {**asdict(row), "median_ms": row.median_ms, "per_second": row.per_second}
            for row in rows
        ],
    }
    _write(args.out, result)
    print(markdown(rows, exports, env))
    return 0


def markdown(rows: Sequence[Row], exports: Sequence[ExportInfo], env: dict[str, Any]) -> str:
    """The results as a markdown table plus the export summary."""
    lines = [
        f"ViT-B-32 (random init, seed 0), {env['threads']} threads, torch {env['torch']}, "
        f"onnxruntime {env['onnxruntime']}, CPU bf16 units: {env['cpu_bf16_units'] or 'none'}; "
        f"median of {env['repeats']} interleaved repeats; "
        f"loadavg {env['loadavg_before'][0]:.2f} -> {env['loadavg_after'][0]:.2f} (shared box)",
        "",
        "| workload | variant | median ms/call | items/s | min cosine vs fp32 | >= 0.999 |",
        "|---|---|---:|---:|---:|:---:|",
    ]
    for row in rows:
        cosine = "n/a" if row.min_cosine is None else f"{row.min_cosine:.6f}"
        ok = "" if row.min_cosine is None else ("yes" if row.min_cosine >= COSINE_BAR else "NO")
        lines.append(f"| {row.workload} | {row.variant} | {row.median_ms:.1f} | "
                     f"{row.per_second:.1f} | {cosine} | {ok} |")
    lines += ["", "| tower | export mode | seconds | MB | failed modes |",
              "|---|---|---:|---:|---|"]
    for info in exports:
        failed = "; ".join(f"{mode}: {error[:120]}" for mode, error in info.errors.items())
        lines.append(f"| {info.tower} | {info.mode or 'FAILED'} | {info.seconds:.1f} | "
                     f"{info.size_mb} | {failed or '-'} |")
    return "\n".join(lines)


def _write(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
