"""``mmrag bench --peers``: the same JPEG files and the same ViT-B-32 weights through other tools.

Each tool runs as a child process of its own (``base.run_peer``): mmrag's ``mmrag ingest``,
towhee 1.1.3's runtime with mmrag's operators (``towhee_child``), the naive per-row loop
(``naive_child``) and clip-retrieval 2.45.0's ``clip_inference`` in a venv of its own
(``clip_retrieval``). Every child reports the images it wrote and the seconds from the first
image to the last row written, its model already loaded; the parent adds the whole command's
wall time, start-up included.
"""
