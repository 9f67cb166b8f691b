"""python -m mmrag."""

from mmrag.cli import program

raise SystemExit(program())
