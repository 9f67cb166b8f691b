"""The API's ingest jobs (``POST /ingest``): the CLI's ingest job run by the server.

``jobs`` runs and reports on them, ``uploads`` spools and keeps uploaded files, ``roots``
checks server paths against ``MMRAG_INGEST_ROOTS``, ``bridge`` lends a job's threads the
server's CPU lane, its SSRF-guarded fetch and its query model. This is the one place the
``retrieval`` package calls into ``ingest`` (the job itself, as ``mmrag ingest`` runs it).
"""
