"""towhee hub operators mmrag does not implement, and what to use instead.

mmrag never downloads operators: ``ops.<ns>.<name>`` finds only operators registered in this
process. For a towhee hub name it does not have, the error says so and names mmrag's way.
"""

from __future__ import annotations

CLIP_IMAGE = (
    "ops.image_text_embedding.clip(model_name='clip_vit_base_patch16', modality='image')"
)
CLIP_TEXT = "ops.image_text_embedding.clip(model_name='clip_vit_base_patch16', modality='text')"
MILVUS_INSERT = "ops.ann_insert.milvus_client(uri='./my.db', collection_name='...') (Milvus Lite)"
MILVUS_SEARCH = "ops.ann_search.milvus_client(uri='./my.db', collection_name='...') (Milvus Lite)"

# Instead of each namespace of towhee's hub (or of one operator in it).
INSTEAD: dict[str, str] = {
    "image-embedding": CLIP_IMAGE,
    "image-text-embedding": CLIP_IMAGE + " or modality='text'",
    "text-embedding": CLIP_TEXT,
    "sentence-embedding": CLIP_TEXT,
    "text-image-embedding": CLIP_TEXT,
    "ann-insert": MILVUS_INSERT,
    "ann-search": MILVUS_SEARCH,
    "video-decode": "mmrag ingest, which samples frames of video files (see README.md)",
    "towhee/clip": CLIP_IMAGE,
    "towhee/image-embedding": CLIP_IMAGE,
}


def instead_of(name: str) -> str | None:
    """What to use instead of towhee hub operator ``ns/name`` (None if it is not a known one)."""
    namespace = name.partition("/")[0]
    return INSTEAD.get(name) or INSTEAD.get(namespace)
