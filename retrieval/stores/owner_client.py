"""HTTP to the ``mmrag serve`` that owns a Lite file: one kept-alive loopback connection.

Every call is a POST of JSON with the owner token; an answer of ``{"error": ...}`` becomes the
same ``MmragError`` it was on the server, and a server that stops answering is a
``StoreUnavailableError`` that says what to run next. Only the standard library is used, so a
command that goes through a server imports nothing more than one that opens the file.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from retrieval.errors import MmragError, StoreUnavailableError
from retrieval.stores.owner_file import OwnerRecord
from retrieval.stores.owner_wire import PREFIX, TOKEN_HEADER, decode_error, dumps, loads

PING_TIMEOUT_S = 2.0  # a published owner that does not answer this fast is not used
CALL_TIMEOUT_S = 600.0  # a call runs as long as the store's own timeouts allow
IDLE_REUSE_S = 2.0  # uvicorn closes a connection idle for 5 s: reuse one only well before


class OwnerClient:
    """Calls to the owning server (thread-safe: one call at a time on a kept-alive connection)."""

    def __init__(self, owner: OwnerRecord, timeout: float = CALL_TIMEOUT_S) -> None:
        parts = urlsplit(owner.url)
        self.owner = owner
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._used = 0.0
        self._lock = threading.Lock()

    def ping(self) -> bool:
        """Whether the server answers as the owner of this file with this token."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=PING_TIMEOUT_S)
        try:
            conn.request("POST", f"{PREFIX}/ping", body=b"{}", headers=self._headers())
            response = conn.getresponse()
            body = response.read()
            if response.status != 200:
                return False
            answer = loads(body)
        except (OSError, http.client.HTTPException, ValueError):
            return False
        finally:
            conn.close()
        return isinstance(answer, dict) and answer.get("db") == str(self.owner.db)

    def call(self, path: str, payload: dict[str, Any]) -> Any:
        """POST ``payload`` to ``PREFIX/path`` and return the answer (errors raised as theirs)."""
        with self._lock:
            status, body = self._exchange(path, dumps(payload))
        return self._answer(status, body)

    def stream(self, path: str, payload: dict[str, Any]) -> Iterator[Any]:
        """POST ``payload`` and yield one JSON value per line of the answer (on its own
        connection, so other calls go on meanwhile)."""
        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            try:
                conn.request("POST", f"{PREFIX}/{path}", body=dumps(payload),
                             headers=self._headers())
                response = conn.getresponse()
                if response.status != 200:
                    self._answer(response.status, response.read())
                lines = iter(response.readline, b"")
                for line in lines:
                    value = loads(line)
                    if isinstance(value, dict) and "error" in value:
                        raise decode_error(value, self._failed(f"HTTP {response.status}"))
                    yield value
            except (OSError, http.client.HTTPException) as exc:
                raise StoreUnavailableError(self._failed(str(exc))) from exc
        finally:
            conn.close()

    def close(self) -> None:
        """Close the kept-alive connection."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _exchange(self, path: str, body: bytes) -> tuple[int, bytes]:
        """Send one request on the kept-alive connection (a new one after ``IDLE_REUSE_S``, so
        the server never closes it under a request: a write is never sent twice)."""
        if self._conn is not None and time.monotonic() - self._used > IDLE_REUSE_S:
            self._conn.close()
            self._conn = None
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            self._conn.request("POST", f"{PREFIX}/{path}", body=body, headers=self._headers())
            response = self._conn.getresponse()
            answer = response.status, response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._conn.close()
            self._conn = None
            raise StoreUnavailableError(self._failed(str(exc))) from exc
        self._used = time.monotonic()
        return answer

    def _answer(self, status: int, body: bytes) -> Any:
        """The value of a 200 answer; the error of any other."""
        try:
            value = loads(body)
        except ValueError:
            value = None
        if status == 200:
            return value
        error: MmragError = decode_error(value, self._failed(f"HTTP {status}"))
        raise error

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", TOKEN_HEADER: self.owner.token}

    def _failed(self, reason: str) -> str:
        """The message for an owner that failed to answer."""
        return (
            f"the mmrag server (pid {self.owner.pid}) that owns the Milvus Lite file "
            f"{self.owner.db} did not answer at {self.owner.url} ({reason}); check it is "
            "running, and run this command again"
        )
