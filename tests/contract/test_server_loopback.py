"""The embedded Milvus server of the tests keeps its traffic on 127.0.0.1 (issue 20, item 13).

Its components advertise 127.0.0.1 to each other, so every connection they open is on
loopback; left unset, they pick the machine's first unicast address and talk over it. Milvus
2.3's gRPC servers listen on the wildcard address (the binary has no listen-address setting),
so listening sockets may be on ``::``/``0.0.0.0`` but on no other specific address.
"""

from __future__ import annotations

import psutil
import pytest

from retrieval.stores.milvus import MilvusStore
from tests.support.milvus_server import EmbeddedServer
from tests.support.sockets import is_loopback, process_sockets

WILDCARDS = ("::", "0.0.0.0")


@pytest.mark.server
def test_embedded_server_talks_over_loopback_only(milvus_server: EmbeddedServer) -> None:
    with MilvusStore(milvus_server.uri, "loopback_probe") as store:
        store.list_collections()  # a client connection, so the proxy has one to show
        server = psutil.Process(milvus_server.pid)
        sockets = process_sockets([server, *server.children(recursive=True)])
    connected = [s for s in sockets if s.status != psutil.CONN_LISTEN]
    listening = [s for s in sockets if s.status == psutil.CONN_LISTEN]
    assert connected and listening, sockets
    assert [s for s in connected if not (is_loopback(s.local) and is_loopback(s.remote))] == []
    assert [s for s in listening if not (is_loopback(s.local) or s.local in WILDCARDS)] == []
