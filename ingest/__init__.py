"""Batch ingest: sources -> decode -> embed -> Milvus, built on mmrag's pipeline engine."""

from ingest.job import IngestOptions, IngestSummary, ProgressSink, Reject, run_ingest
from ingest.shard import Shard
from ingest.sources import SourceItem, open_source

__all__ = [
    "IngestOptions",
    "IngestSummary",
    "ProgressSink",
    "Reject",
    "Shard",
    "SourceItem",
    "open_source",
    "run_ingest",
]
