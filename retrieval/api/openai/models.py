"""``GET /v1/models``: ``mmrag`` (the default collection) and ``mmrag:<collection>`` for each."""

from __future__ import annotations

from fastapi import APIRouter

from retrieval.api.deps import ServiceDep
from retrieval.api.openai.errors import OPENAI_PREFIX, OPENAI_TAGS
from retrieval.api.openai.grounded import COLLECTION_MODEL, model_collection
from retrieval.api.openai.route import OpenAIRoute
from retrieval.api.openai.schemas import MODEL_ID, ModelCard, ModelList, openai_responses
from retrieval.errors import StoreError

router = APIRouter(prefix=OPENAI_PREFIX, tags=OPENAI_TAGS, route_class=OpenAIRoute)


@router.get("/models", response_model=ModelList, summary="Models (one per collection)",
            responses=openai_responses(401))
async def list_models(service: ServiceDep) -> ModelList:
    """``mmrag`` for the default collection, then ``mmrag:<name>`` for every collection."""
    names: list[str] = []
    try:
        names = await service.stores.list_collections()
    except StoreError:
        names = []
    ids = [MODEL_ID, *(f"{MODEL_ID}:{n}" for n in names if COLLECTION_MODEL.match(f"mmrag:{n}"))]
    return ModelList(data=[ModelCard(id=i) for i in ids])


@router.get("/models/{model}", response_model=ModelCard, summary="One model",
            responses=openai_responses(401, 404))
async def get_model(model: str, service: ServiceDep) -> ModelCard:
    """A model card, or 404 model_not_found."""
    model_collection(model, service)
    return ModelCard(id=model)
