"""Rendering rows as towhee's ``DataCollection.show()`` does: a grid in a terminal, HTML in Jupyter.

Cells are shown briefly: text cut at 128 characters, arrays as their first values and shape,
images (HxWx3 uint8) as thumbnails in HTML, lists as their first four items.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

TEXT_MAX = 128
LIST_MAX = 4
THUMB_SIDE = 128


def is_image(value: Any) -> bool:
    """Whether a value looks like a decoded colour image (HxWx3 uint8)."""
    return isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim == 3 and (
        value.shape[2] == 3
    )


def _text(value: str) -> str:
    return value if len(value) <= TEXT_MAX else value[:TEXT_MAX] + "..."


def brief(value: Any) -> str:
    """One line standing for a cell value."""
    if isinstance(value, str):
        return _text(value)
    if is_image(value):
        mode = getattr(value, "mode", "RGB")
        return f"<image {value.shape[1]}x{value.shape[0]} {mode}>"
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)
        head = [repr(v.item()) for v in flat[:3]]
        if flat.shape[0] > 3:
            head.append("...")
        return f"[{', '.join(head)}] shape={value.shape}"
    if isinstance(value, list | tuple):
        items = [brief(v) for v in value[:LIST_MAX]]
        more = f",...] len={len(value)}" if len(value) > LIST_MAX else "]"
        return "[" + ",".join(items) + more
    return _text(str(value))


def grid(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A text table with a border round every cell (tabulate's 'grid' look)."""
    cells = [[brief(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]

    def rule(char: str) -> str:
        return "+" + "+".join(char * (w + 2) for w in widths) + "+"

    def line(values: Sequence[str]) -> str:
        return "|" + "|".join(f" {v.ljust(w)} " for v, w in zip(values, widths, strict=True)) + "|"

    out = [rule("-"), line(list(headers)), rule("=")]
    for row in cells:
        out.extend([line(row), rule("-")])
    if not cells:
        out[-1] = rule("-")
    return "\n".join(out)


def thumbnail_png(image: np.ndarray) -> str:
    """A base64 PNG of the image scaled to fit THUMB_SIDE pixels."""
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    scale = min(1.0, THUMB_SIDE / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    bgr = pixels if getattr(image, "mode", "RGB") == "BGR" else pixels[..., ::-1]
    ok, png = cv2.imencode(".png", np.ascontiguousarray(bgr))
    if not ok:
        return ""
    return base64.b64encode(png.tobytes()).decode("ascii")


def html_cell(value: Any) -> str:
    """The HTML of one cell: images as thumbnails, lists of images side by side."""
    if is_image(value):
        return f'<img src="data:image/png;base64,{thumbnail_png(value)}" alt="image">'
    if isinstance(value, list | tuple) and value and all(is_image(v) for v in value):
        return " ".join(html_cell(v) for v in value)
    return html.escape(brief(value))


def html_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """An HTML table of the rows."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="vertical-align:top">{html_cell(v)}</td>' for v in row)
        + "</tr>"
        for row in rows
    )
    return f'<table style="border-collapse:collapse"><tr>{head}</tr>{body}</table>'


def in_notebook() -> bool:
    """Whether this runs under IPython/Jupyter (which defines ``get_ipython``)."""
    import builtins

    return hasattr(builtins, "get_ipython")
