"""The measured sections of ``mmrag bench``: each figure with its baseline, back to back."""

from mmrag.bench.sections.ingest import ingest_section
from mmrag.bench.sections.peers import TOOLS as PEER_TOOLS
from mmrag.bench.sections.peers import peers_section
from mmrag.bench.sections.precision import precision_section
from mmrag.bench.sections.search import search_section
from mmrag.bench.sections.startup import startup_section
from mmrag.bench.sections.store import store_section
from mmrag.bench.sections.text import TextRun, text_section

__all__ = ["PEER_TOOLS", "TextRun", "ingest_section", "peers_section", "precision_section",
           "search_section",
           "startup_section", "store_section", "text_section"]
