"""mmrag: the command line and application layer over retrieval/, pipelines/ and ingest/."""

__version__ = "0.1.0"
