"""Ranked hits as a rich table that fits the terminal: one line per hit, the path readable.

At 80 columns a full 32-character id and a long path cannot both fit, so the columns get what
they need in this order: rank and score, then the path (shortened from the left, so the file
name stays visible: ``…/holidays/beach.jpg``), then the id (its start, like a short git hash;
``--json`` prints it whole), then the caption (cut with an ellipsis). Every cell is escaped
(mmrag.console).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text

from mmrag.console import cell, printable

ELLIPSIS = "…"
SCORE_WIDTH = 7  # -0.1234
SHORT_ID = 12  # id characters kept when the terminal is narrow
MIN_CAPTION = 12
MIN_SOURCE = 16


@dataclass(frozen=True)
class HitRow:
    """What one table row shows of a hit (or of a cited item)."""

    rank: str
    score: float
    id: str
    source: str
    caption: str


def shorten_left(text: str, width: int) -> str:
    """``text`` at most ``width`` characters, cut from the left with an ellipsis."""
    if len(text) <= width:
        return text
    return ELLIPSIS + text[len(text) - width + 1:] if width > 1 else text[-width:]


def shorten_right(text: str, width: int) -> str:
    """``text`` at most ``width`` characters, cut from the right with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: width - 1] + ELLIPSIS if width > 1 else text[:width]


def table_overhead(columns: int) -> int:
    """Characters a SIMPLE_HEAD table without edge padding adds around ``columns`` cells."""
    return 3 * columns - 1


def hit_table(rows: Sequence[HitRow], width: int, title: str | None = None) -> Table:
    """The rows as a table no wider than ``width`` columns, one line per row (title: plain)."""
    ranks = [printable(r.rank) for r in rows]
    ids = [printable(r.id) for r in rows]
    sources = [printable(r.source) for r in rows]
    captions = [printable(" ".join(r.caption.split())) for r in rows]  # one line
    rank_w = max([1, *map(len, ranks)])
    room = width - table_overhead(5) - rank_w - SCORE_WIDTH
    longest_id = max([2, *map(len, ids)])
    short_id = min(SHORT_ID, longest_id)
    file_names = max([0, *(len(s.rsplit("/", 1)[-1]) + 2 for s in sources)])  # "…/name"
    source_w = min(max([6, *map(len, sources)]),
                   max(MIN_SOURCE, file_names, room - MIN_CAPTION - short_id), room - short_id)
    id_w = min(longest_id, max(short_id, room - source_w - MIN_CAPTION))
    caption_w = min(max([7, *map(len, captions)]), room - source_w - id_w)
    if caption_w < MIN_CAPTION // 2:  # too narrow for a caption: the path gets its room
        caption_w = 0
        source_w = max(6, width - table_overhead(4) - rank_w - SCORE_WIDTH - id_w)
    table = Table(
        box=box.SIMPLE_HEAD, title=cell(title) if title else None, title_justify="left",
        pad_edge=False,
    )
    table.add_column("#", justify="right", no_wrap=True, width=rank_w)
    table.add_column("score", no_wrap=True, width=SCORE_WIDTH)
    table.add_column("source", no_wrap=True, width=source_w)
    table.add_column("id", no_wrap=True, width=id_w)
    if caption_w:
        table.add_column("caption", no_wrap=True, width=caption_w)
    for rank, row, id_text, source, caption in zip(ranks, rows, ids, sources, captions,
                                                   strict=True):
        cells: list[Text | str] = [
            cell(rank), f"{row.score:.4f}", cell(shorten_left(source, source_w)),
            cell(shorten_right(id_text, id_w)),
        ]
        if caption_w:
            cells.append(cell(shorten_right(caption, caption_w)))
        table.add_row(*cells)
    return table
