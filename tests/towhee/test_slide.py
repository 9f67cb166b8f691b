"""Acceptance: the talk slide's pipeline runs with only its import line changed.

The text_image_search notebook's code first makes the collection with pymilvus and fills it
with its insert pipeline; then the slide's code runs as it is (plus the ``import numpy as np``
it forgot). Both run as one script, the way a user runs them, offline: towhee's model name
loads from weights cached where open_clip downloads them (random weights: the test checks the
pipeline, not the model). On the embedded server the slide's ``port='19530'`` becomes the
server's port (the same when 19530 was free); on Lite, ``host=/port=`` becomes ``uri=``.
"""

from __future__ import annotations

import csv
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retrieval.embedders import create_embedder
from tests.towhee.conftest import IMAGES, Connection
from tests.towhee.notebook_data import hf_cache_path
from tests.towhee.slide import NOTEBOOK_INSERT, SLIDE, as_mmrag

REPO = Path(__file__).resolve().parents[2]
SAVE_RESULT = """
import pickle
with open('slide_result.pkl', 'wb') as f:
    pickle.dump(p4("A white dog").get_dict(), f)
"""

pytestmark = pytest.mark.slow


def run_script(folder: Path, code: str, hf_home: Path) -> subprocess.CompletedProcess[str]:
    """Run code as ``python script.py`` in folder, offline, with the repository importable."""
    script = folder / "slide_script.py"
    script.write_text(code, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HOME": str(hf_home),
        "HF_HUB_OFFLINE": "1",
        "PYTHONWARNINGS": "ignore",
    }
    return subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
        timeout=600, check=False,
    )


def test_the_slide_runs_with_only_the_import_line_changed(
    connection: Connection, notebook_dir: Path, vit_b16_hf_home: Path, tmp_path: Path
) -> None:
    for name in ("reverse_image_search.csv", "train"):
        (tmp_path / name).symlink_to(notebook_dir / name)
    address = {"lite_db": connection.uri} if connection.kind == "lite" else {
        "port": int(connection.connect_args["port"])
    }
    code = "\n".join([
        as_mmrag(NOTEBOOK_INSERT, **address),
        "import numpy as np",
        as_mmrag(SLIDE, **address),
        SAVE_RESULT,
    ])
    done = run_script(tmp_path, code, vit_b16_hf_home)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "terminate called" not in done.stderr
    assert f"Total number of inserted data is {IMAGES}." in done.stdout
    table = done.stdout.split(f"{IMAGES}.", 1)[1]
    assert "| text" in table and "images" in table and "| A white dog" in table
    assert "len=5" in table  # the five images of the hits

    result = pickle.loads((tmp_path / "slide_result.pkl").read_bytes())
    assert result["text"] == "A white dog"
    # The same search by hand: the model from its cached file, pymilvus's own search.
    weights = hf_cache_path(vit_b16_hf_home, "ViT-B-16-quickgelu", "openai")
    model = create_embedder("ViT-B-16-quickgelu", checkpoint=weights, device="cpu")
    query = model.embed_texts(["A white dog"])[0]
    from pymilvus import Collection, connections

    connections.connect(alias="default", **connection.connect_args)  # after: Lite has one owner
    try:
        hits = Collection("text_image_search").search(
            [query.tolist()], "embedding", {"metric_type": "L2", "params": {"nprobe": 10}}, limit=5
        )[0]
    finally:
        connections.disconnect("default")
    expected_ids = [hit.id for hit in hits]
    assert all(isinstance(i, int) for i in expected_ids)  # the collection's INT64 ids
    with (tmp_path / "reverse_image_search.csv").open() as handle:
        paths = {int(row["id"]): row["path"] for row in csv.DictReader(handle)}
    import cv2

    shown = result["images"]
    assert len(shown) == 5
    for image, image_id in zip(shown, expected_ids, strict=True):
        rgb = cv2.cvtColor(cv2.imread(paths[image_id]), cv2.COLOR_BGR2RGB)
        assert image.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(image), rgb)
