"""python -m mmrag."""

from mmrag.cli import main

raise SystemExit(main())
