"""OpenClipEmbedder against open_clip's own path, batching, checkpoints, registry and errors."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import pytest
import torch
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image

from retrieval.config import Settings
from retrieval.embedders import (
    DEMO_MODEL,
    OpenClipEmbedder,
    PreprocessConfig,
    add_model_config,
    create_embedder,
    create_embedder_from_settings,
    list_models,
    preprocess_image,
    resolve_device,
)
from retrieval.embedders import registry as registry_module
from retrieval.embedders.base import Embedder
from retrieval.errors import ConfigError, EmbeddingError, ModelNotFoundError
from retrieval.imaging import decode_image
from retrieval.types import Modality
from tests.support.images import make_test_image
from tests.support.tiny_model import (
    TINY_MODEL_CONFIG,
    TINY_MODEL_NAME,
    build_tiny_model,
    save_checkpoint,
)

# (height, width): landscape/portrait/square/extreme/tiny/upscale and large downscales to 64 px.
SIZES = [(700, 1000), (1200, 1600), (96, 128), (128, 96), (300, 80), (64, 64), (40, 50), (33, 200)]

ImageFileFactory = Callable[..., list[Path]]


@pytest.fixture(scope="module")
def reference(tiny_model_files: tuple[Path, Path]) -> tuple[torch.nn.Module, Callable[..., Any]]:
    """open_clip's own model and inference transform, loaded independently from the checkpoint."""
    config, checkpoint = tiny_model_files
    add_model_config(config)
    model, _, preprocess = open_clip.create_model_and_transforms(
        TINY_MODEL_NAME, pretrained=str(checkpoint)
    )
    return model.eval(), preprocess


@pytest.fixture(scope="module")
def image_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """JPEG and PNG files of the SIZES, written with OpenCV."""
    from tests.support.images import write_image_files

    directory = tmp_path_factory.mktemp("embed_images")
    jpegs = write_image_files(directory, len(SIZES), ext=".jpg", sizes=SIZES)
    pngs = write_image_files(directory, 2, ext=".png", sizes=[(500, 333), (90, 300)], start=50)
    return jpegs + pngs


def reference_vectors(reference: tuple, paths: list[Path]) -> np.ndarray:
    """PIL open, open_clip's preprocess, encode_image, L2-normalise."""
    model, preprocess = reference
    with torch.inference_mode():
        batch = torch.stack([preprocess(Image.open(path)) for path in paths])
        features = model.encode_image(batch).numpy()
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def test_image_embeddings_match_open_clip(
    tiny_embedder: Embedder, reference: tuple, image_paths: list[Path]
) -> None:
    ours = tiny_embedder.embed_images([decode_image(p.read_bytes()) for p in image_paths])
    theirs = reference_vectors(reference, image_paths)
    cosines = np.sum(ours * theirs, axis=1)
    print("cosine mmrag vs open_clip:", np.round(cosines, 7).tolist())
    assert ours.shape == (len(image_paths), 32) and ours.dtype == np.float32
    assert cosines.min() >= 0.999
    # a random tiny model maps all images close together, so check the inputs directly as well
    assert cosines.min() >= 0.99999


def test_preprocessing_equals_open_clip_transform(
    tiny_embedder: OpenClipEmbedder, reference: tuple, image_paths: list[Path]
) -> None:
    _, preprocess = reference
    exact = dataclasses.replace(tiny_embedder.preprocess_config, reducing_gap=None)
    for path in image_paths:
        rgb = decode_image(path.read_bytes())
        theirs = preprocess(Image.open(path)).numpy()
        assert np.array_equal(preprocess_image(rgb, exact), theirs), path.name
        fast = tiny_embedder.prepare_image(rgb)
        assert fast.dtype == np.float32 and fast.shape == theirs.shape == (3, 64, 64)
        assert np.abs(fast - theirs).mean() < 0.01 and np.abs(fast - theirs).max() < 0.15


@pytest.mark.parametrize("mode", ["shortest", "longest", "squash"])
@pytest.mark.parametrize("size", [(64, 64), (48, 80)])
@pytest.mark.parametrize("interpolation", ["bicubic", "bilinear"])
def test_resize_modes_equal_open_clip(mode: str, size: tuple[int, int], interpolation: str) -> None:
    cfg = PreprocessConfig(size=size, resize_mode=mode, interpolation=interpolation,
                           fill_color=17, reducing_gap=None)
    transform = image_transform_v2(
        PreprocessCfg(size=size, resize_mode=mode, interpolation=interpolation,
                                fill_color=17),
        is_train=False,
    )
    shapes = [(100, 150), (150, 100), (30, 200), (64, 64), (20, 20)]
    for index, (height, width) in enumerate(shapes):
        rgb = make_test_image(index, height, width)
        assert np.array_equal(preprocess_image(rgb, cfg), transform(Image.fromarray(rgb)).numpy())


def test_vectors_are_unit_norm_and_batching_is_invisible(
    tiny_embedder: Embedder, make_image_files: ImageFileFactory
) -> None:
    images = [decode_image(p.read_bytes()) for p in make_image_files(10)]
    batched = tiny_embedder.embed_images(images)  # batch_size 4: batches of 4, 4, 2
    one_by_one = np.concatenate([tiny_embedder.embed_images([image]) for image in images])
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert np.allclose(batched, one_by_one, atol=1e-5)
    assert len({v.tobytes() for v in batched}) == 10


def test_prepare_image_is_thread_safe_and_embed_prepared_agrees(tiny_embedder: Embedder) -> None:
    images = [make_test_image(i, 200 + 10 * i, 300) for i in range(6)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        prepared = list(pool.map(tiny_embedder.prepare_image, images))
    direct = tiny_embedder.embed_images(images)
    assert np.array_equal(tiny_embedder.embed_prepared(prepared), direct)


def test_texts_embed(tiny_embedder: Embedder) -> None:
    texts = ["a red circle", "a blue square", "", "word " * 200]  # last one is truncated
    vectors = tiny_embedder.embed_texts(texts)
    assert vectors.shape == (4, tiny_embedder.dim) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])
    assert np.allclose(tiny_embedder.embed_texts(texts[:1]), vectors[:1], atol=1e-5)
    assert tiny_embedder.embed_texts([]).shape == (0, tiny_embedder.dim)


def test_bad_prepared_input_raises(tiny_embedder: Embedder) -> None:
    with pytest.raises(EmbeddingError, match="expects prepared images"):
        tiny_embedder.embed_batch([np.zeros((3, 32, 32), np.float32)], Modality.IMAGE)
    with pytest.raises(EmbeddingError, match="HxWx3 uint8"):
        tiny_embedder.prepare_image(np.zeros((10, 10), np.uint8))


def test_identity(tiny_embedder: OpenClipEmbedder, tiny_model_files: tuple[Path, Path]) -> None:
    assert tiny_embedder.dim == TINY_MODEL_CONFIG["embed_dim"] == 32
    assert tiny_embedder.device == "cpu"
    digest = registry_module.OpenClipEmbedder  # same class through the registry
    assert isinstance(tiny_embedder, digest)
    assert tiny_embedder.model_id.startswith(f"{TINY_MODEL_NAME}/ckpt-")
    assert len(tiny_embedder.model_id.rsplit("ckpt-", 1)[1]) == 12
    assert not tiny_embedder.model.training
    assert all(p.dtype == torch.float32 for p in tiny_embedder.model.parameters())


# --- checkpoints -----------------------------------------------------------------------------


def test_checkpoint_round_trip(tiny_embedder: OpenClipEmbedder, tmp_path: Path) -> None:
    images = [make_test_image(i, 120, 90) for i in range(3)]
    texts = ["a photo", "a drawing"]
    saved = save_checkpoint(tiny_embedder.model, tmp_path / "again.safetensors")
    reloaded = create_embedder(TINY_MODEL_NAME, checkpoint=saved, device="cpu", precision="fp32")
    assert np.array_equal(reloaded.embed_images(images), tiny_embedder.embed_images(images))
    assert np.array_equal(reloaded.embed_texts(texts), tiny_embedder.embed_texts(texts))

    torch.save(tiny_embedder.model.state_dict(), tmp_path / "again.pt")
    from_pt = create_embedder(
        TINY_MODEL_NAME, checkpoint=tmp_path / "again.pt", device="cpu", precision="fp32"
    )
    assert np.array_equal(from_pt.embed_images(images), tiny_embedder.embed_images(images))
    assert from_pt.model_id != reloaded.model_id  # ids hash the file bytes


def test_fp16_checkpoint_loads_as_fp32(tiny_embedder: Embedder, tmp_path: Path) -> None:
    path = save_checkpoint(build_tiny_model(), tmp_path / "half.safetensors", half=True)
    half = create_embedder(TINY_MODEL_NAME, checkpoint=path, device="cpu", precision="fp32")
    assert isinstance(half, OpenClipEmbedder)
    assert all(p.dtype == torch.float32 for p in half.model.parameters())
    images = [make_test_image(i, 80, 80) for i in range(3)]
    cosines = np.sum(half.embed_images(images) * tiny_embedder.embed_images(images), axis=1)
    assert cosines.min() > 0.999


def test_other_seed_gives_other_vectors_and_id(tiny_embedder: Embedder, tmp_path: Path) -> None:
    path = save_checkpoint(build_tiny_model(seed=99), tmp_path / "other.safetensors")
    other = create_embedder(TINY_MODEL_NAME, checkpoint=path, device="cpu")
    assert other.model_id != tiny_embedder.model_id
    image = [make_test_image(0, 64, 64)]
    assert not np.allclose(other.embed_images(image), tiny_embedder.embed_images(image))


def test_missing_corrupt_and_mismatched_checkpoints(
    tiny_embedder: Embedder, tmp_path: Path
) -> None:
    with pytest.raises(ModelNotFoundError, match="checkpoint file not found"):
        create_embedder(TINY_MODEL_NAME, checkpoint=tmp_path / "nope.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(ModelNotFoundError, match="cannot load checkpoint"):
        create_embedder(TINY_MODEL_NAME, checkpoint=garbage)
    garbage_pt = tmp_path / "garbage.pt"
    garbage_pt.write_bytes(b"not a pickle")
    with pytest.raises(ModelNotFoundError, match="cannot load checkpoint"):
        create_embedder(TINY_MODEL_NAME, checkpoint=garbage_pt)
    wrong = tmp_path / "wrong.safetensors"
    from safetensors.torch import save_file

    save_file({"visual.proj": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(ModelNotFoundError, match="cannot load checkpoint"):
        create_embedder(TINY_MODEL_NAME, checkpoint=wrong)


# --- names, tags, devices, settings ----------------------------------------------------------


def test_unknown_model_suggests_close_names() -> None:
    with pytest.raises(ModelNotFoundError, match="ViT-B-32") as info:
        create_embedder("ViT-B-33", pretrained="openai")
    assert "unknown model" in str(info.value)


def test_unknown_tag_and_no_weights() -> None:
    with pytest.raises(ModelNotFoundError, match="laion2b_s34b_b79k"):
        create_embedder("ViT-B/32", pretrained="no-such-tag")  # OpenAI spelling is accepted
    with pytest.raises(ModelNotFoundError, match="no weights"):
        create_embedder("ViT-B-32")


def test_download_failure_says_to_pass_a_checkpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args: object, **kwargs: object) -> str:
        raise OSError("Temporary failure in name resolution")

    # The download goes through retrieval.embedders.weights (cache first, one probe, then the
    # hub): the hub answers the probe here, and the download itself fails.
    from retrieval.embedders import weights

    monkeypatch.setattr(weights, "hub_unreachable", lambda: None)
    monkeypatch.setattr(weights, "hf_hub_download", offline)
    monkeypatch.setattr(weights.HubWeights, "cached_file", lambda self: None)
    with pytest.raises(ModelNotFoundError, match="checkpoint") as info:
        create_embedder("ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu")
    assert "name resolution" in str(info.value)


def test_schema_names_refuse_a_separate_checkpoint(tiny_model_files: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="brings its own weights"):
        create_embedder("hf-hub:org/repo", checkpoint=tiny_model_files[1])


def test_model_given_as_config_path(tiny_model_files: tuple[Path, Path], tmp_path: Path) -> None:
    config = tmp_path / "mmrag-test-by-path.json"
    shutil.copy(tiny_model_files[0], config)
    embedder = create_embedder(str(config), checkpoint=tiny_model_files[1], device="cpu")
    assert embedder.model_id.startswith("mmrag-test-by-path/ckpt-")


def test_device_resolution(tiny_model_files: tuple[Path, Path]) -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == expected
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ConfigError):
        resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    auto = create_embedder(TINY_MODEL_NAME, checkpoint=tiny_model_files[1], device="auto")
    assert isinstance(auto, OpenClipEmbedder) and auto.device == expected
    assert next(auto.model.parameters()).device.type == expected


def test_from_settings(tiny_model_files: tuple[Path, Path]) -> None:
    settings = Settings(model=TINY_MODEL_NAME, pretrained="", checkpoint=tiny_model_files[1],
                        device="cpu", batch_size=3)
    embedder = create_embedder_from_settings(settings)
    assert embedder.batch_size == 3 and embedder.model_id.startswith(TINY_MODEL_NAME)


def test_list_models_and_add_model_config(tmp_path: Path, tiny_embedder: Embedder) -> None:
    names = list_models()
    assert "ViT-B-32" in names and DEMO_MODEL in names and TINY_MODEL_NAME in names
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "mmrag-test-folder.json").write_text(json.dumps(TINY_MODEL_CONFIG))
    (folder / "notes.json").write_text('{"hello": 1}')
    assert add_model_config(folder) == ["mmrag-test-folder"]
    assert "mmrag-test-folder" in list_models()
    with pytest.raises(ModelNotFoundError):
        add_model_config(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="not an open_clip model config"):
        add_model_config(folder / "notes.json")


# --- bundled models --------------------------------------------------------------------------


def test_bundled_model_loads_its_own_files(
    tiny_model_files: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "mmrag-test-bundle"
    config, checkpoint = tmp_path / f"{name}.json", tmp_path / f"{name}.safetensors"
    bundle = registry_module.BundledModel(name, config, checkpoint)
    monkeypatch.setitem(registry_module._BUNDLED, name, bundle)
    assert name in list_models()
    with pytest.raises(ModelNotFoundError, match=r"config .* is missing"):
        create_embedder(name)
    shutil.copy(tiny_model_files[0], config)
    with pytest.raises(ModelNotFoundError, match=r"weights .* are missing"):
        create_embedder(name)
    shutil.copy(tiny_model_files[1], checkpoint)
    embedder = create_embedder(name, pretrained="laion2b_s34b_b79k", device="cpu")  # tag ignored
    assert embedder.model_id == f"{name}/ckpt-" + tiny_model_id_suffix(tiny_model_files[1])
    assert embedder.dim == 32


def tiny_model_id_suffix(path: Path) -> str:
    """The 12-hex checkpoint digest used in model ids."""
    from retrieval.embedders.open_clip import file_digest

    return file_digest(path)[:12]


def test_mmrag_demo_loads_or_says_why() -> None:
    bundle = registry_module._BUNDLED[DEMO_MODEL]
    if bundle.config.is_file() and bundle.checkpoint.is_file():
        demo = create_embedder(DEMO_MODEL, device="cpu")
        assert demo.model_id.startswith(f"{DEMO_MODEL}/ckpt-")
        vectors = demo.embed_texts(["a red circle"])
        assert vectors.shape == (1, demo.dim) and np.isfinite(vectors).all()
    else:
        with pytest.raises(ModelNotFoundError, match="missing"):
            create_embedder(DEMO_MODEL)
