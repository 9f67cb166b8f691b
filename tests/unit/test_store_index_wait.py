"""Which loaded segments the server index wait counts as searched through the vector index.

The records are pymilvus's own ``LoadedSegmentInfo``, as ``list_loaded_segments`` returns them.
Under load a Milvus 2.3 server loads a big sealed segment before its index and searches it
through the interim IVF index (recall ~0.5) until it reloads it with the built one.
"""

from __future__ import annotations

from pymilvus.client.types import LoadedSegmentInfo, SegmentState
from pymilvus.grpc_gen import common_pb2

from retrieval.stores.milvus_schema import MIN_INDEXED_SEGMENT_ROWS, indexed_rows


def _segment(rows: int, state: SegmentState, index_id: int) -> LoadedSegmentInfo:
    return LoadedSegmentInfo(
        segment_id=1, collection_id=2, collection_name="c", num_rows=rows, is_sorted=False,
        state=state, level=common_pb2.SegmentLevel.Legacy, storage_version=0, partition_id=3,
        index_name="vector" if index_id else "", index_id=index_id, node_ids=[1], mem_size=0,
    )


def test_a_big_sealed_segment_counts_only_once_loaded_with_its_index() -> None:
    assert indexed_rows(_segment(5000, SegmentState.Sealed, index_id=0)) == 0
    assert indexed_rows(_segment(5000, SegmentState.Sealed, index_id=77)) == 5000
    assert indexed_rows(_segment(5000, SegmentState.Flushed, index_id=77)) == 5000


def test_segments_too_small_for_an_index_count_once_sealed() -> None:
    small = MIN_INDEXED_SEGMENT_ROWS - 1
    assert indexed_rows(_segment(small, SegmentState.Sealed, index_id=0)) == small
    assert indexed_rows(_segment(MIN_INDEXED_SEGMENT_ROWS, SegmentState.Sealed, index_id=0)) == 0


def test_growing_segments_never_count() -> None:
    assert indexed_rows(_segment(5000, SegmentState.Growing, index_id=0)) == 0
    assert indexed_rows(_segment(10, SegmentState.Growing, index_id=0)) == 0
