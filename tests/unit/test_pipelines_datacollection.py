"""DataCollection: towhee's table of a result, in a terminal and in Jupyter."""

from __future__ import annotations

import base64
import builtins

import cv2
import numpy as np
import pytest

from pipelines import ColumnType, DataCollection, pipe
from pipelines.image import Image


def result_with_images():
    red = Image(np.full((300, 200, 3), (255, 0, 0), np.uint8), "RGB")
    p = (
        pipe.input("text")
        .map("text", "images", lambda t: [red, red])
        .map("text", "vec", lambda t: np.arange(6, dtype=np.float32))
        .output("text", "images", "vec")
    )
    return p("A white dog")


def test_show_prints_a_grid_in_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    dc = DataCollection(result_with_images())
    assert len(dc) == 1 and dc[0].text == "A white dog" and dc[0]["vec"].shape == (6,)
    dc.show()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("+-") and out[2].startswith("+=")
    assert [cell.strip() for cell in out[1].split("|")[1:4]] == ["text", "images", "vec"]
    assert "A white dog" in out[3] and "<image 200x300 RGB>" in out[3]
    assert "[0.0, 1.0, 2.0, ...] shape=(6,)" in out[3]
    assert repr(dc).startswith("<DataCollection Schema[text: ColumnType.SCALAR")


def test_show_in_jupyter_renders_thumbnails(monkeypatch: pytest.MonkeyPatch) -> None:
    shown: list[str] = []
    monkeypatch.setattr(builtins, "get_ipython", lambda: None, raising=False)
    monkeypatch.setattr("builtins.print", lambda *a, **k: shown.append(str(a[0])))
    DataCollection(result_with_images()).show()  # IPython absent here: the markup is printed
    html = shown[0]
    assert html.startswith("<table") and html.count("<img ") == 2
    data = html.split('base64,', 1)[1].split('"', 1)[0]
    thumb = cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape == (128, 85, 3)  # fits 128 px, aspect kept
    assert tuple(thumb[0, 0]) == (0, 0, 255)  # still red (BGR on disk)


def test_lists_dicts_and_batches() -> None:
    p = pipe.input("n").flat_map("n", "i", range).output("n", "i")
    dc = DataCollection(p(3))
    assert [e.i for e in dc.to_list()] == [0, 1, 2]
    assert DataCollection(dc.to_dict()).to_dict() == dc.to_dict()
    assert dc.to_dict()["type_schema"] == [ColumnType.SCALAR.name, ColumnType.QUEUE.name]
    assert [e.value for e in DataCollection([5, 6])] == [5, 6]
    assert [e.a for e in DataCollection([{"a": 1}, {"a": 2}])] == [1, 2]
    assert len(DataCollection(p.batch([1, 2])[1]) + dc) == 5
    assert p(2).to_list(kv_format=True) == [{"n": 2, "i": 0}, {"n": 2, "i": 1}]
    with pytest.raises(TypeError, match="pipeline result, a list"):
        DataCollection(42)
