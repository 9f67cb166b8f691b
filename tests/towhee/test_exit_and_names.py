"""Scripts end cleanly whatever a pipeline result is doing; towhee's names and bad names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest

from pipelines import UnknownOperatorError, ops
from pipelines.operators.clip import Clip
from pipelines.towhee_models import TOWHEE_CLIP_MODELS, supported_model_names
from retrieval.errors import ModelNotFoundError
from tests.support.tiny_model import TINY_MODEL_NAME

REPO = Path(__file__).resolve().parents[2]

HELD_RESULT = """
from pipelines import pipe, ops
from retrieval.embedders import add_model_config
add_model_config({config!r})
clip = ops.image_text_embedding.clip(model_name={name!r}, modality='text',
                                     checkpoint_path={checkpoint!r}, device='cpu')
p = pipe.input('text').map('text', 'vec', clip).output('vec')
{last_line}
"""


@pytest.mark.parametrize(
    "last_line",
    [
        "r = p('a')",  # the case: a result held as the script's last line
        "r = p.lazy(*['a'] * 1); q = (pipe.input('n').flat_map('n', 't', lambda n: ['x'] * n)"
        ".map('t', 'v', clip).output('v')).lazy(5000); q.get()",  # a run mid-embedding at exit
    ],
    ids=["held-result", "running-at-exit"],
)
def test_a_script_exits_cleanly_with_a_pipeline_result_held(
    last_line: str, tiny_model_files: tuple[Path, Path], tmp_path: Path
) -> None:
    config, checkpoint = tiny_model_files
    script = tmp_path / "held.py"
    script.write_text(HELD_RESULT.format(config=str(config), name=TINY_MODEL_NAME,
                                         checkpoint=str(checkpoint), last_line=last_line))
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "terminate called" not in done.stderr


def test_towhee_names_map_to_open_clips_copies_of_the_openai_weights() -> None:
    assert supported_model_names() == [
        "clip_vit_base_patch16", "clip_vit_base_patch32", "clip_vit_large_patch14",
        "clip_vit_large_patch14_336",
    ]
    assert Clip.supported_model_names("onnx") == supported_model_names()
    assert TOWHEE_CLIP_MODELS["clip_vit_base_patch16"].model == "ViT-B-16-quickgelu"
    for towhee_name, name in TOWHEE_CLIP_MODELS.items():
        cfg = open_clip.get_pretrained_cfg(name.model, name.pretrained)
        assert cfg.get("quick_gelu") is True, towhee_name  # run as OpenAI trained them
        assert cfg["hf_hub"].endswith(".openai/"), towhee_name
        width = {"base": 512, "large": 768}[towhee_name.split("_")[2]]
        assert open_clip.get_model_config(name.model)["embed_dim"] == width


def test_checkpoint_path_and_device_as_towhee_passes_them(
    tiny_model_files: tuple[Path, Path], tiny_embedder
) -> None:
    _, checkpoint = tiny_model_files
    op = ops.image_text_embedding.clip(model_name=TINY_MODEL_NAME, modality="text",
                                       checkpoint_path=str(checkpoint), device=-1)
    clip = op.get_op()
    assert isinstance(clip, Clip) and clip.embedder.device == "cpu"
    vec, ref = op("a dog"), tiny_embedder.embed_texts(["a dog"])[0]  # bf16 vs fp32 on CPU
    assert float(np.dot(vec, ref)) > 0.999


def test_unknown_model_names_name_close_towhee_and_open_clip_names() -> None:
    with pytest.raises(ModelNotFoundError) as info:
        Clip(model_name="clip_vit_base_patch61")
    message = str(info.value)
    assert "clip_vit_base_patch16" in message and "\n" not in message
    with pytest.raises(ModelNotFoundError) as info:
        Clip(model_name="ViT-B-61")
    assert "ViT-B-16" in str(info.value)
    assert "vit_medium_patch16_gap_256" not in str(info.value)  # never a bare timm name


def test_hub_operators_mmrag_lacks_say_what_to_use_instead() -> None:
    with pytest.raises(UnknownOperatorError, match=r"not implement.*image_text_embedding.clip"):
        ops.image_embedding.timm(model_name="resnet50")
    with pytest.raises(UnknownOperatorError, match=r"does not implement.*ann_insert.milvus_client"):
        ops.ann_insert.faiss_index("./faiss", 512)
    with pytest.raises(UnknownOperatorError, match="closest are image-decode/cv2"):
        ops.image_decode.cv3()
