"""mmrag models: the model names mmrag accepts: its built-in ones and open_clip's, with tags."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from mmrag.console import cell, markup_safe

if TYPE_CHECKING:
    from retrieval.config import Settings

# open_clip (torch) and rich imports live in run(): `mmrag --help` stays instant.


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "models",
        parents=[common],
        help="list the models: mmrag's built-in ones and open_clip's names with pretrained tags",
        description="List the names --model (MMRAG_MODEL) accepts: mmrag's built-in models "
        "(bundled weights, no download) and every open_clip model with the pretrained tags "
        "(--pretrained, MMRAG_PRETRAINED) it can download. The configured model is marked.",
    )
    p.add_argument("pattern", nargs="?", help="show only names containing this (e.g. ViT-B)")
    p.add_argument("--json", action="store_true", help="print the models as JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Print the built-in models, then open_clip's names and tags."""
    import open_clip

    from retrieval.embedders.registry import bundled_models

    pattern = (args.pattern or "").lower()
    tags: dict[str, list[str]] = {}
    for name, tag in open_clip.list_pretrained():
        tags.setdefault(name, []).append(tag)
    builtin = {m.name: m for m in bundled_models()}
    catalogue: dict[str, Any] = {
        "configured": {"model": settings.model, "pretrained": settings.pretrained_tag()},
        "builtin": [
            {"model": m.name, "config": str(m.config), "checkpoint": str(m.checkpoint),
             "weights_present": m.checkpoint.is_file()}
            for m in builtin.values() if pattern in m.name.lower()
        ],
        "open_clip": [
            {"model": name, "pretrained": tags.get(name, [])}
            for name in sorted(open_clip.list_models(), key=str.lower)
            if pattern in name.lower() and name not in builtin  # ours once loaded
        ],
    }
    if args.json:
        print(json.dumps(catalogue, ensure_ascii=False))
        return 0
    print_models(catalogue)
    return 0


def print_models(catalogue: dict[str, Any]) -> None:
    """Two tables: built-in models, then open_clip's with their tags."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    configured = catalogue["configured"]
    mark = {configured["model"]: "*"}
    if catalogue["builtin"]:
        table = Table("", "built-in model", "weights", title_justify="left")
        for entry in catalogue["builtin"]:
            weights = "local: works offline" if entry["weights_present"] else (
                f"missing: {entry['checkpoint']}")
            table.add_row(mark.get(entry["model"], ""), cell(entry["model"]), cell(weights))
        console.print(table)
    if catalogue["open_clip"]:
        table = Table("", "open_clip model", "pretrained tags (--pretrained)", title_justify="left")
        for entry in catalogue["open_clip"]:
            shown = ", ".join(entry["pretrained"]) or "(none: needs --checkpoint PATH)"
            table.add_row(mark.get(entry["model"], ""), cell(entry["model"]), cell(shown))
        console.print(table)
    if not catalogue["builtin"] and not catalogue["open_clip"]:
        console.print("no model name matches; run mmrag models without a pattern to list all")
        return
    tag = configured["pretrained"]
    console.print(
        f"* configured: --model {markup_safe(configured['model'])}"
        + (f" --pretrained {markup_safe(tag)}" if tag else "")
        + "; open_clip downloads a tag's weights on first use (about 150 MB to 4 GB), "
        "mmrag-demo needs no download"
    )
