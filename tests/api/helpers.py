"""API test helpers: building the shared collection, polling readiness, a Milvus outage proxy.

The collection holds 16 labelled JPEG/PNG images, one video frame and, in a second
collection, three more images.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
from fastapi.testclient import TestClient

from retrieval.components import build_components
from retrieval.config import Settings
from retrieval.types import Record
from tests.support.images import make_test_image, write_image_files

LABELS = ("dog", "cat", "bird", "fish")
VIDEO_ID = "video-0001:frame.5"


@dataclass
class ApiData:
    """What the shared collection holds and where its files are."""

    root: Path
    settings: Settings
    images: list[Path]
    ids: dict[str, str]  # source path -> stored id
    metadata: dict[str, dict]  # stored id -> metadata
    secret: Path
    video: Path
    other_ids: list[str] = field(default_factory=list)

    def settings_with(self, **changes: object) -> Settings:
        """A copy of the settings with some fields changed."""
        return self.settings.model_copy(update=changes)


def tiny_settings(root: Path, config: Path, checkpoint: Path, **extra: object) -> Settings:
    """Settings for a Lite file under root, served with the tiny model on CPU."""
    return Settings(
        uri=str(root / "api.db"),
        collection="items",
        model=str(config),
        checkpoint=checkpoint,
        pretrained=None,
        device="cpu",
        batch_size=8,
        thumbnail_dir=root / "thumbs",
        **extra,  # type: ignore[arg-type]
    )


def _write_video(path: Path) -> None:
    """A 2 s, 10 fps MJPG video whose frames get brighter."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (80, 64))
    for index in range(20):
        frame = make_test_image(100 + index, 64, 80)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def build_collection(root: Path, config: Path, checkpoint: Path) -> ApiData:
    """Write the files and ingest them into ``items`` (and ``other``) in root/api.db."""
    from ingest.job import IngestOptions, run_ingest
    from ingest.sources import SourceItem

    images = write_image_files(root / "sources", 12, ext=".jpg")
    images += write_image_files(root / "sources", 4, ext=".png", start=12)
    secret = root / "secret.txt"
    secret.write_text("TOP-SECRET-MARKER outside the ingested sources\n")
    settings = tiny_settings(root, config, checkpoint)
    items = []
    for index, path in enumerate(images):
        label = LABELS[index % len(LABELS)]
        meta = {
            "label": label,
            "year": 2016 + index % 8,
            "taken": f"20{16 + index % 8:02d}-0{1 + index % 9}-15",
            "rating": round(0.5 + index / 10, 2),
            "indoor": index % 2 == 0,
            "note": "50%_off" if index == 3 else "plain",
        }
        items.append(SourceItem(source=str(path), caption=f"a photo of a {label} #{index}",
                                metadata=meta))
    components = build_components(settings)
    try:
        summary = run_ingest(components, items, IngestOptions(batch_size=8, workers=2))
        assert summary.ingested == len(images), summary.rejects
        stored = [r for batch in components.store.iterate(with_vectors=False) for r in batch]
        ids = {r.source: r.id for r in stored}
        metadata = {r.id: dict(r.metadata) for r in stored}
        video = root / "sources" / "clip.avi"
        _write_video(video)
        capture = cv2.VideoCapture(str(video))
        capture.set(cv2.CAP_PROP_POS_MSEC, 500.0)
        ok, frame = capture.read()
        capture.release()
        assert ok
        embedder = components.embedder
        vector = embedder.embed_images([cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)])[0]
        video_meta = {"label": "video", "video": str(video), "video_ts": 0.5, "frame": 5}
        components.store.upsert([
            Record(id=VIDEO_ID, vector=vector, source=f"{video}#t=0.5", caption="a video frame",
                   metadata=video_meta, model_id=embedder.model_id)
        ])
        metadata[VIDEO_ID] = video_meta
        components.store.flush()
    finally:
        components.close()
    other = build_components(settings.model_copy(update={"collection": "other"}))
    try:
        others = write_image_files(root / "other_sources", 3, start=40)
        run_ingest(other, [SourceItem(source=str(p)) for p in others])
        other_ids = [r.id for b in other.store.iterate(with_vectors=False) for r in b]
    finally:
        other.close()
    return ApiData(root=root, settings=settings, images=images, ids=ids, metadata=metadata,
                   secret=secret, video=video, other_ids=other_ids)


def wait_ready(test_client: TestClient, timeout_s: float = 60.0) -> None:
    """Poll /ready until it answers 200."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = test_client.get("/ready")
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not ready: {response.text}")
        time.sleep(0.05)


def free_port() -> int:
    """A TCP port on loopback nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def error_of(response: object) -> dict:
    """The ``error`` object of an API error response (asserting its shape)."""
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["type"], str) and body["error"]["message"], body
    return dict(body["error"])


class SocketProxy:
    """Listens on 127.0.0.1:port and forwards each connection to a Unix socket."""

    def __init__(self, unix_path: str, port: int = 0) -> None:
        self.unix_path = unix_path
        self.port = port
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Listen (again) on the same port."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        self.port = listener.getsockname()[1]
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """Refuse new connections and cut the open ones (Milvus "goes down")."""
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX)
            try:
                upstream.connect(self.unix_path)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
