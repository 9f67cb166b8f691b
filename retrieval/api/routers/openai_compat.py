"""OpenAI-compatible ``/v1``: mmrag as a "model" whose answers are grounded in the collection.

``GET /v1/models`` lists ``mmrag`` (the default collection) and ``mmrag:<collection>`` for each
collection; ``POST /v1/chat/completions`` and ``POST /v1/completions`` answer like OpenAI's
endpoints (JSON or SSE chunks ending with ``data: [DONE]``), so the official SDKs, LangChain's
``ChatOpenAI``, LlamaIndex's ``OpenAILike`` and Open WebUI can use it with
``base_url=http://host:8000/v1``. Extensions: the request may carry ``k`` and ``filter`` (the
search API's structured filter; ``extra_body`` in the SDK), and the response (or the last
chunk) carries ``citations``. Every error under ``/v1`` uses OpenAI's ``{"error": {"message",
"type", "param", "code"}}`` shape. The pieces live in ``retrieval.api.openai``.
"""

from __future__ import annotations

from fastapi import APIRouter

from retrieval.api.openai import chat, completions, models

router = APIRouter()  # each part's routes carry the /v1 prefix (and metric labels) themselves
for part in (models.router, chat.router, completions.router):
    router.routes.extend(part.routes)
