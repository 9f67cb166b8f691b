"""Hidden routes under /_owner: other mmrag commands use the served Lite file through here.

``mmrag serve`` owning a Milvus Lite file publishes an owner file with a random token
(``stores/owner_file.py``); a command on the same file sends each VectorStore call here
(``stores/owner.py``) and it runs on a store of its own in this process (``stores/owner_calls``).
Only the owner token opens these routes, never the API key, and only from loopback clients;
without a published token (a server URI, or a file this server does not own) they are 404. They
are left out of the OpenAPI schema: they are mmrag's own protocol, not the API.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse

from retrieval.api.deps import ServiceDep
from retrieval.api.errors import ApiError
from retrieval.api.service import Service
from retrieval.errors import MmragError
from retrieval.stores.owner_calls import iterate_lines, run_call
from retrieval.stores.owner_wire import (
    PREFIX,
    TOKEN_HEADER,
    dumps,
    encode_capabilities,
    encode_error,
    loads,
)

router = APIRouter(prefix=PREFIX, include_in_schema=False)


async def _authorised(request: Request, service: ServiceDep) -> Service:
    """The service, for a loopback client that sent this server's owner token (else 403/404)."""
    expected: str | None = getattr(request.app.state, "owner_token", None)
    if not expected:
        raise ApiError(404, "Not Found", type="not_found")
    host = request.client.host if request.client is not None else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    supplied = request.headers.get(TOKEN_HEADER, "")
    matched = hmac.compare_digest(supplied.encode("latin-1", "replace"), expected.encode())
    if not (loopback and matched):
        raise ApiError(
            403,
            "Refused: these routes serve mmrag commands on this machine that read the owner "
            "file of the served Milvus Lite file; use the documented API routes instead.",
            type="forbidden",
        )
    return service


OwnerDep = Annotated[Service, Depends(_authorised)]


def _json(value: Any, status: int = 200) -> Response:
    """A JSON answer (NaN allowed, as the wire says)."""
    return Response(dumps(value), status_code=status, media_type="application/json")


async def _body(request: Request) -> dict[str, Any]:
    """The request's JSON object (sent by an mmrag command holding the token)."""
    try:
        data = loads(await request.body())
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.", type="invalid_request")
    return data


@router.post("/ping")
async def ping(service: OwnerDep) -> Response:
    """Which file this server owns, and its pid (a client checks the owner file against it)."""
    return _json({"db": str(service.owned_db), "pid": os.getpid()})


@router.post("/open")
async def open_session(request: Request, service: OwnerDep) -> Response:
    """Open a store for a client store: its session id, name, location and capabilities."""
    data = await _body(request)
    collection = str(data.get("collection", ""))
    index_type = str(data.get("index_type", "auto"))
    try:
        session, store = await service.stores.run(
            service.owner_sessions.open, collection, index_type
        )
        capabilities = await service.stores.run(lambda: encode_capabilities(store.capabilities))
    except MmragError as exc:
        return _json(encode_error(exc), 409)
    return _json({"session": session, "collection": store.collection, "where": store.where,
                  "capabilities": capabilities})


@router.post("/call")
async def call(request: Request, service: OwnerDep) -> Response:
    """Run one VectorStore method on a session's store."""
    data = await _body(request)
    args = data.get("args") or {}
    try:
        store = service.owner_sessions.store(str(data.get("session", "")))
    except MmragError as exc:
        return _json(encode_error(exc), 409)
    answer = await service.stores.run(run_call, store, str(data.get("method", "")), args)
    return _json(answer, 409 if "error" in answer else 200)


@router.post("/iterate")
async def iterate(request: Request, service: OwnerDep) -> Response:
    """A session store's records (all, or those matching ``expr``), one JSON line a batch."""
    data = await _body(request)
    try:
        store = service.owner_sessions.store(str(data.get("session", "")))
    except MmragError as exc:
        return _json(encode_error(exc), 409)

    def lines() -> Iterator[bytes]:
        for value in iterate_lines(store, data):
            yield dumps(value) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


@router.post("/close")
async def close_session(request: Request, service: OwnerDep) -> Response:
    """Close a session's store."""
    data = await _body(request)
    await service.stores.run(service.owner_sessions.close, str(data.get("session", "")))
    return _json({"closed": True})
