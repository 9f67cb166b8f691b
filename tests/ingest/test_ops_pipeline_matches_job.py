"""A towhee-style ops pipeline builds the collection the ingest job builds (one implementation)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ingest import IngestOptions, run_ingest
from ingest.sources import open_source
from pipelines import ops, pipe
from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.ids import content_id
from retrieval.stores import open_store
from retrieval.stores.base import VectorStore

# small photos and two big enough for the job's draft (DCT-scaled) JPEG decoding
SIZES = ((96, 128), (128, 96), (80, 80), (150, 220), (480, 640), (900, 700))


def _vectors(store: VectorStore) -> dict[str, np.ndarray]:
    return {r.id: r.vector for batch in store.iterate(1000, with_vectors=True) for r in batch}


def test_ops_pipeline_builds_the_collection_the_ingest_job_builds(
    settings: Settings, make_image_files
) -> None:
    files = make_image_files(12, sizes=SIZES)
    components = build_components(settings)  # the job loads its model from settings
    try:
        run_ingest(components, open_source(files[0].parent), IngestOptions(batch_size=4))
    finally:
        components.close()

    uri, collection = settings.uri, "ops"
    clip = ops.image_text_embedding.clip(
        model_name=settings.model, checkpoint=str(settings.checkpoint), device="cpu"
    )
    inserter = ops.ann_insert.milvus_client(uri=uri, collection=collection)
    insert = (
        pipe.input("path")
        .map("path", "id", lambda p: content_id(Path(p).read_bytes()))
        .map("path", "img", ops.image_decode.cv2_rgb())
        .map("img", "vec", clip, config={"batch_size": 4})
        .map("vec", "vec", ops.towhee.np_normalize())
        .map(("id", "vec", "path"), (), inserter, config={"batch_size": 4})
        .output()
    )
    insert.batch([str(f) for f in files])
    inserter.flush()

    job_store, ops_store = open_store(uri, settings.collection), open_store(uri, collection)
    with job_store, ops_store:
        by_job, by_ops = _vectors(job_store), _vectors(ops_store)
        assert sorted(by_ops) == sorted(by_job)
        assert len(by_job) == len(files)
        for row_id, vector in by_job.items():
            cosine = float(np.dot(vector, by_ops[row_id]))
            cosine /= float(np.linalg.norm(vector) * np.linalg.norm(by_ops[row_id]))
            assert cosine >= 0.9999, row_id
        assert ops_store.info().model_id == job_store.info().model_id
        assert ops_store.info().dim == job_store.info().dim
        assert ops_store.model_spec() == job_store.model_spec()
        assert job_store.model_spec() is not None
