"""POST /ingest (uploads, URLs, server paths), GET /ingest[/{id}[/events]], DELETE /ingest/{id}.

A job runs on the server (``retrieval.api.ingest.jobs``); these routes check what it may read
and report on it. Uploads are multipart ``files`` parts (many per request, each capped by
``MMRAG_MAX_UPLOAD_BYTES``); JSON names ``urls`` (fetched through the SSRF guard) and ``paths``
on the server (only under ``MMRAG_INGEST_ROOTS``).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.ingest.jobs import IngestJob, IngestRequest
from retrieval.api.ingest.roots import check_server_path
from retrieval.api.ingest.uploads import Spool, UploadBatch, data_dir
from retrieval.api.json_input import DepthLimitedRoute
from retrieval.api.schemas import (
    COLLECTION_PATTERN,
    INGEST_JOB_PATTERN,
    IngestJobOut,
    IngestJobsResponse,
    IngestJsonRequest,
    error_responses,
)
from retrieval.api.service import Service
from retrieval.api.sse import EventStreamResponse, sse
from retrieval.api.url_guard import check_url_shape

router = APIRouter(tags=["ingest"], route_class=DepthLimitedRoute)

JobId = Annotated[str, Path(pattern=INGEST_JOB_PATTERN, description="the job's id")]
MAX_FORM_FIELD_BYTES = 64 * 1024
HEARTBEAT_S = 15.0
STREAM_CLOSING = sse("error", {
    "message": "The server is shutting down; the ingest job stopped between batches and what "
    "it wrote stays. Send the same request again to finish it.",
})


def _multipart_schema() -> dict[str, Any]:
    """OpenAPI schema of the upload form."""
    return {
        "type": "object",
        "required": ["files"],
        "properties": {
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "the image files (a picked folder's relative names are "
                      "kept as their folder)"},
            "collection": {"type": "string", "pattern": COLLECTION_PATTERN,
                           "description": "collection to write (default: the server's)"},
        },
    }


_INGEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _multipart_schema()},
            "application/json": {"schema": IngestJsonRequest.model_json_schema()},
        },
    }
}


def _out(job: IngestJob) -> IngestJobOut:
    return IngestJobOut.model_validate(job.snapshot())


async def _from_form(request: Request, service: Service) -> IngestRequest:
    """Spool every uploaded file of a multipart request (files over the cap become rejects)."""
    settings = service.settings
    base = data_dir(settings.uri, settings.upload_dir)
    spool: Spool | None = None
    try:
        async with request.form(
            max_files=settings.ingest_max_files, max_fields=4, max_part_size=MAX_FORM_FIELD_BYTES
        ) as form:
            collection: str | None = None
            uploads: list[UploadFile] = []
            for name, value in form.multi_items():
                if isinstance(value, UploadFile) and name in ("files", "file"):
                    uploads.append(value)
                elif name == "collection" and isinstance(value, str):
                    collection = _collection(value)
                else:
                    raise ApiError(422, f"unexpected form field {name!r}: send files as "
                                   "'files' parts and optionally a 'collection' field",
                                   type="invalid_request")
            if not uploads:
                raise ApiError(422, "the upload has no files: send each image as a 'files' part",
                               type="invalid_request")
            spool = await service.run_io(Spool.create, base, "upload")
            for upload in uploads:
                await service.run_io(spool.add, upload.filename or "upload", upload.file,
                                     settings.max_upload_bytes)
    except BaseException:
        if spool is not None:
            spool.remove()
        raise
    return IngestRequest(
        collection=collection or settings.collection,
        uploads=UploadBatch(spool, base),
    )


def _collection(value: str) -> str:
    if not re.fullmatch(COLLECTION_PATTERN, value):
        raise ApiError(422, f"collection {value[:80]!r} is not a collection name (letters, "
                       "digits and _, not starting with a digit)", type="invalid_request")
    return value


async def _from_json(request: Request, service: Service) -> IngestRequest:
    """URLs (shape-checked here, fetched by the job through the guard) and checked paths."""
    try:
        body = IngestJsonRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**err, "loc": ("body", *err.get("loc", ()))} for err in exc.errors()]
        raise RequestValidationError(errors) from exc
    if not body.urls and not body.paths:
        raise ApiError(422, "nothing to ingest: give 'urls', 'paths', or upload files as "
                       "multipart 'files' parts", type="invalid_request")
    for url in body.urls:
        if len(url) > 2048:
            raise ApiError(422, "a URL is longer than 2048 characters", type="invalid_url")
        check_url_shape(url)
    roots = list(service.settings.ingest_roots)
    paths = [await service.run_io(check_server_path, text, roots) for text in body.paths]
    return IngestRequest(
        collection=body.collection or service.settings.collection,
        urls=list(dict.fromkeys(body.urls)),
        paths=paths,
    )


@router.post(
    "/ingest",
    status_code=202,
    response_model=IngestJobOut,
    summary="Start an ingest job: uploaded files, image URLs, or server paths",
    responses=error_responses(403, 404, 415, 422, 429, 503),
    openapi_extra=_INGEST_BODY,
)
async def start_ingest(request: Request, service: ServiceDep) -> JSONResponse:
    """Start a job on the server and answer 202 with it (follow ``GET /ingest/{id}`` or its
    ``/events`` stream).

    ``multipart/form-data``: ``files`` parts (many at once; each capped by
    ``MMRAG_MAX_UPLOAD_BYTES``; one that is no image is a reject, not a failure) and an optional
    ``collection`` field. ``application/json``: ``{"urls": [...], "paths": [...]}``: URLs of
    public hosts, and absolute server paths under ``MMRAG_INGEST_ROOTS`` (403 otherwise; none
    are allowed by default). It is the CLI's ingest job: images already stored are duplicates,
    a rerun adds only what is missing. One job at a time writes to a collection; others wait.
    """
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "multipart/form-data":
        ingest = await _from_form(request, service)
    elif media == "application/json" or media.endswith("+json"):
        ingest = await _from_json(request, service)
    else:
        raise ApiError(415, "send multipart/form-data with 'files' parts, or application/json "
                       "with 'urls' or 'paths'", type="unsupported_media_type")
    try:
        job = service.ingests.submit(ingest)
    except ApiError:
        if ingest.uploads is not None:
            ingest.uploads.spool.remove()
        raise
    return JSONResponse(_out(job).model_dump(), status_code=202,
                        headers={"Location": f"/ingest/{job.id}"})


@router.get(
    "/ingest",
    response_model=IngestJobsResponse,
    summary="Recent ingest jobs",
    responses=error_responses(),
)
async def list_ingests(service: ServiceDep) -> IngestJobsResponse:
    """Running, queued and recently finished jobs, newest first."""
    return IngestJobsResponse(jobs=[_out(job) for job in service.ingests.recent()])


@router.get(
    "/ingest/{job_id}",
    response_model=IngestJobOut,
    summary="An ingest job's state, progress, counts and rejects",
    responses=error_responses(404, 422),
)
async def get_ingest(job_id: JobId, service: ServiceDep) -> IngestJobOut:
    """The job's state (queued, running, done, failed, cancelled), progress and rejects."""
    return _out(service.ingests.get(job_id))


@router.get(
    "/ingest/{job_id}/events",
    summary="Follow an ingest job (Server-Sent Events)",
    status_code=200,
    response_class=EventStreamResponse,
    responses={
        200: {"content": {"text/event-stream": {}},
              "description": "`progress` events with the job, then one `done` event with the "
              "finished job"},
        **error_responses(404, 422),
    },
)
async def follow_ingest(job_id: JobId, service: ServiceDep) -> EventStreamResponse:
    """A ``progress`` event (the job, as ``GET /ingest/{id}``) whenever it changes, then a
    ``done`` event once it is done, failed or cancelled; a comment line every 15 s keeps idle
    connections open."""
    jobs = service.ingests
    job = jobs.get(job_id)

    async def events() -> AsyncIterator[str]:
        seen = -1
        while True:
            version = job.version
            if job.finished:
                yield sse("done", _out(job).model_dump())
                return
            if version != seen:
                seen = version
                yield sse("progress", _out(job).model_dump())
            else:
                yield ": still running\n\n"
            await jobs.wait_change(job, seen, HEARTBEAT_S)

    return EventStreamResponse(events(), STREAM_CLOSING)


@router.delete(
    "/ingest/{job_id}",
    response_model=IngestJobOut,
    summary="Cancel an ingest job",
    responses=error_responses(404, 409, 422),
)
async def cancel_ingest(job_id: JobId, service: ServiceDep) -> IngestJobOut:
    """Cancel a queued job at once, a running one between batches (its state turns
    ``cancelled`` once it stopped). What was written stays; 409 once the job has finished."""
    return _out(service.ingests.cancel(job_id))
