"""Batch ingest: sources -> decode -> embed -> Milvus, built on mmrag's pipeline engine."""

from ingest.job import IngestOptions, IngestSummary, run_ingest

__all__ = ["IngestOptions", "IngestSummary", "run_ingest"]
