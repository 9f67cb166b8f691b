"""The search API (FastAPI): ``create_app(settings)``; ``mmrag serve`` runs it with uvicorn."""

from retrieval.api.app import create_app

__all__ = ["create_app"]
