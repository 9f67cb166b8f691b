"""The measured sections of ``mmrag bench``: each figure with its baseline, back to back."""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.bench.models import BENCH_MODEL, checkpoint_for, load_embedder

WORDS = [
    "dog",
    "cat",
    "car",
    "tree",
    "red",
    "blue",
    "house",
    "beach",
    "street",
    "night",
    "city",
    "river",
    "mountain",
    "snow",
    "child",
    "bicycle",
    "bird",
    "flower",
    "boat",
    "train",
    "window",
    "chair",
    "table",
    "sunset",
    "forest",
    "market",
    "bridge",
    "horse",
    "woman",
    "man",
    "old",
    "small",
    "large",
    "green",
    "yellow",
    "wet",
    "dry",
    "running",
    "sitting",
    "flying",
    "parked",
]


@dataclass
class Row:
    """One line of the table: a figure, its baseline, and the target on their ratio."""

    section: str
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: str = ""  # e.g. ">= 0.85" or "<= 1.3" on value/baseline
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def met(self) -> bool | None:
        if not self.target or self.ratio is None:
            return None
        op, bound = self.target.split()
        return self.ratio >= float(bound) if op == ">=" else self.ratio <= float(bound)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ratio": self.ratio, "met": self.met}


@dataclass
class Sizes:
    """How much each section does (quick vs full)."""

    images: int = 512
    naive_images: int = 64
    memory_images: int = 10_000
    batch_size: int = 32
    bare_batches: int = 4
    vectors: int = 100_000
    ann_vectors: int = 100_000  # clustered, IVF_FLAT: N-client QPS with an ANN index (0: skip)
    queries: int = 40
    concurrent_queries: int = 2000  # ~10 s of 16 clients: a steady rate, not a burst
    clients: int = 16
    text_batch: int = 16
    store_sizes: list[int] = field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    store_queries: int = 50
    models: list[str] = field(default_factory=lambda: [BENCH_MODEL, "mmrag-demo"])
    torch_threads: int = 0  # 0: torch's default (one per core); also passed to the server
    precision: str = "auto"  # MMRAG_PRECISION for every model here and in the server


class PeakRss:
    """Samples the RSS of a process plus its children (the Milvus Lite server); keeps the peak."""

    def __init__(self, pid: int | None = None, every_s: float = 0.1) -> None:
        import psutil

        self.proc = psutil.Process(pid or os.getpid())
        self.every_s = every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._sample())

    @property
    def mib(self) -> float:
        return self.peak / 2**20


def unique_queries(n: int, seed: int) -> list[str]:
    """n distinct short text queries (3..9 words), so the query cache never answers."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = rng.choices(WORDS, k=rng.randint(3, 9))
        out.append(f"{' '.join(words)} {seed}x{i}")
    return out


def warm_texts(seed: int = 0) -> list[str]:
    """Queries of 1..18 words: one call each makes the first real query of a token length
    not pay for creating that shape's kernels (~0.5 s per new shape for ViT-B-32 here)."""
    return [
        " ".join(WORDS[(seed + j) % len(WORDS)] for j in range(n)) + f" w{seed}x{n}"
        for n in range(1, 19)
    ]


def _timed(fn: Callable[[], Any], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


# ----- text encode: full padding vs trimmed ---------------------------------------------------

TEXT_PAIRS_BUDGET_S = 1.0  # batch-1 timing: pairs (trimmed, full) until this much time is spent


def text_section(model: str, sizes: Sizes, log: Callable[[str], None]) -> tuple[list[Row], dict]:
    """Text encode ms at batch 1 (trimmed vs full padding), equivalence, batched throughput."""
    import torch

    emb = load_embedder(model, batch_size=sizes.text_batch, precision=sizes.precision)
    full = load_embedder(
        model, batch_size=sizes.text_batch, trim_text=False, precision=sizes.precision
    )
    queries = unique_queries(max(sizes.queries, sizes.text_batch * 3), seed=11)
    for text in warm_texts():
        emb.embed_texts([text])
    full.embed_texts(queries[:2])  # warm-up (one shape: always 77 positions)
    emb.embed_texts(queries[: sizes.text_batch])
    full.embed_texts(queries[: sizes.text_batch])
    n = max(8, sizes.queries // 2)
    trim_times: list[float] = []
    full_times: list[float] = []
    spent = 0.0
    for i, query in enumerate(itertools.cycle(queries)):  # interleaved: load hits both alike
        if i >= n and (spent >= TEXT_PAIRS_BUDGET_S or i >= 20 * n):
            break  # small models: more pairs, until a second is spent, so noise cancels
        trim_times += _timed(functools.partial(emb.embed_texts, [query]), 1)
        full_times += _timed(functools.partial(full.embed_texts, [query + " "]), 1)
        spent += trim_times[-1] + full_times[-1]
    t_trim, t_full = float(np.median(trim_times)), float(np.median(full_times))
    a = emb.embed_texts(queries[: sizes.text_batch])
    b = full.embed_texts(queries[: sizes.text_batch])
    cos = float((a * b).sum(axis=1).min())
    diff = float(np.abs(a - b).max())
    batch = queries[: sizes.text_batch]
    reps = max(2, sizes.queries // sizes.text_batch)
    t_batch = float(np.median(_timed(lambda: emb.embed_texts(batch), reps)))
    t_batch_full = float(np.median(_timed(lambda: full.embed_texts(batch), max(2, reps // 2))))
    log(
        f"text {model}: batch1 trimmed {t_trim * 1e3:.1f} ms, full {t_full * 1e3:.1f} ms, "
        f"cos {cos:.6f}, max|d| {diff:.2e}"
    )
    rows = [
        Row(
            "text",
            f"{model} text encode, batch 1, padding trimmed",
            t_trim * 1e3,
            "ms",
            t_full * 1e3,
            "full 77-token padding",
            "<= 1.0",
            f"min cosine {cos:.6f}, max |diff| {diff:.1e}",
        ),
        Row(
            "text",
            f"{model} text encode, batch {sizes.text_batch}, trimmed",
            len(batch) / t_batch,
            "texts/s",
            len(batch) / t_batch_full,
            "full padding",
            ">= 1.0",
        ),
    ]
    info = {
        "text_ms_b1": t_trim * 1e3,
        "text_batch_per_s": len(batch) / t_batch,
        "torch_threads": torch.get_num_threads(),
        "embedder": emb,
    }
    return rows, info


# ----- precision: bf16 (where the CPU has the units) vs fp32 -------------------------------


def precision_section(model: str, emb: Any, sizes: Sizes, log: Callable[[str], None]) -> list[Row]:
    """Image and text encode throughput of the chosen precision vs fp32, with min cosine."""
    from retrieval.embedders.precision import cpu_bf16_units

    if emb.precision == "fp32":
        log(f"precision {model}: fp32 (no native bf16 here, or --precision fp32)")
        return []
    ref = load_embedder(model, batch_size=sizes.batch_size, precision="fp32")
    bs = sizes.batch_size
    fast = bare_forward(emb, bs, sizes.bare_batches)
    slow = bare_forward(ref, bs, sizes.bare_batches)
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 255, (240, 320, 3), dtype=np.uint8) for _ in range(8)]
    texts = unique_queries(sizes.text_batch, seed=13)
    img_cos = float((emb.embed_images(images) * ref.embed_images(images)).sum(axis=1).min())
    txt_cos = float((emb.embed_texts(texts) * ref.embed_texts(texts)).sum(axis=1).min())
    reps = max(2, sizes.queries // sizes.text_batch)
    t_fast = float(np.median(_timed(lambda: emb.embed_texts(texts), reps)))
    t_slow = float(np.median(_timed(lambda: ref.embed_texts(texts), reps)))
    log(f"precision {model}: {emb.precision} {fast:.1f} img/s vs fp32 {slow:.1f}, "
        f"cos {img_cos:.5f}")
    units = cpu_bf16_units() if emb.device == "cpu" else emb.device
    label = f"{emb.precision} ({units or 'emulated'})"
    return [
        Row("precision", f"{model} image encode, batch {bs}, {label}", fast, "img/s", slow,
            "fp32", ">= 1.0", f"min cosine to fp32 {img_cos:.5f} (kept only if >= 0.999)"),
        Row("precision", f"{model} text encode, batch {sizes.text_batch}, {emb.precision}",
            len(texts) / t_fast, "texts/s", len(texts) / t_slow, "fp32", ">= 1.0",
            f"min cosine to fp32 {txt_cos:.5f}"),
    ]


# ----- ingest -----------------------------------------------------------------------------


def write_jpegs(folder: Path, count: int, size: tuple[int, int] = (480, 640)) -> list[Path]:
    """count distinct JPEG photos-sized files (noise + gradients), written with OpenCV."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(3)
    h, w = size
    grad = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    paths = []
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    for i in range(count):
        img = (base.astype(np.float32) * 0.5 + grad * ((i % 7) / 7.0)).astype(np.uint8)
        img = np.roll(img, i * 13, axis=1)
        img[(i * 17) % h : (i * 17) % h + 20, :, i % 3] = 255 - i % 255
        path = folder / f"img{i:06d}.jpg"
        cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    return paths


def _components(embedder: Any, db: Path, collection: str) -> Any:
    from retrieval.components import Components
    from retrieval.config import Settings
    from retrieval.stores import open_store

    settings = Settings(uri=str(db), collection=collection)
    store = open_store(str(db), collection)
    return Components(settings=settings, store=store, _embedder=embedder)


def bare_forward(embedder: Any, batch_size: int, batches: int) -> float:
    """Images/s of the model alone on already-decoded tensors at the ingest batch size."""
    import torch

    shape = (batch_size, *embedder.preprocess_config.input_shape)
    x = torch.randn(shape).to(embedder.input_dtype)  # bf16 models take bf16 images
    model = embedder.model
    with torch.inference_mode():
        model.encode_image(x)  # warm-up at the measured shape
        times = _timed(lambda: model.encode_image(x), batches)
    return batch_size / float(np.median(times))


def naive_ingest(embedder: Any, paths: list[Path], db: Path) -> float:
    """towhee/bootcamp shape: decode one image, embed one image, insert one row; flush at end."""
    import cv2

    from retrieval.types import Record

    comps = _components(embedder, db, "naive")
    store = comps.store
    store.ensure_collection(embedder.dim, embedder.model_id)
    started = time.perf_counter()
    for path in paths:
        bgr = cv2.imread(str(path))
        if bgr is None:
            raise RuntimeError(f"cannot decode {path}")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        vec = embedder.embed_images([rgb])[0]
        store.upsert([Record(id=path.name, vector=vec, source=str(path))])
    store.flush()
    elapsed = time.perf_counter() - started
    comps.close()
    return len(paths) / elapsed


def mmrag_ingest(
    embedder: Any, folder: Path, db: Path, batch_size: int
) -> tuple[float, float, int]:
    """Images/s of run_ingest from JPEG files to flushed rows, and peak RSS (MiB, + Milvus Lite)."""
    from ingest import IngestOptions, open_source, run_ingest

    comps = _components(embedder, db, "ingest")
    options = IngestOptions(batch_size=batch_size, workers=max(1, min(4, os.cpu_count() or 1)))
    with PeakRss() as rss:
        summary = run_ingest(comps, open_source(folder), options)
    comps.close()
    return summary.ingested / summary.elapsed_s, rss.mib, summary.ingested


def decode_cost_s(embedder: Any, paths: list[Path]) -> float:
    """CPU seconds of one thread per image to read, decode and prepare, as ingest workers do."""
    from retrieval.imaging import decode_image

    started = time.thread_time()
    for path in paths:
        rgb = decode_image(path.read_bytes(), min_side=embedder.decode_min_side)
        embedder.prepare_image(rgb)
    return (time.thread_time() - started) / max(1, len(paths))


def ingest_rows(
    label: str, embedder: Any, folder: Path, db: Path, sizes: Sizes
) -> tuple[list[Row], dict[str, float]]:
    """Ingest vs the bare forward (before and after) and vs the CPU ceiling with decoding."""
    bs = sizes.batch_size
    cores = os.cpu_count() or 1
    before = bare_forward(embedder, bs, sizes.bare_batches)
    ips, rss, done = mmrag_ingest(embedder, folder, db, bs)
    after = bare_forward(embedder, bs, sizes.bare_batches)
    bare = (before + after) / 2
    decode_s = decode_cost_s(embedder, sorted(folder.glob("*.jpg"))[:64])
    ceiling = cores / (cores / bare + decode_s)  # model and decoding share the same cores
    note = (
        f"bare before/after {before:.1f}/{after:.1f}; decode+prepare "
        f"{decode_s * 1e3:.1f} ms/img on one core"
    )
    rows = [
        Row("ingest", f"{label} ingest {done} JPEGs -> flushed rows", ips, "img/s", bare,
            f"bare encode_image, batch {bs}", ">= 0.85", note),
        Row("ingest", f"{label} ingest vs CPU ceiling with decoding", ips, "img/s", ceiling,
            f"{cores} cores / (cores / bare + decode)", "",
            "what this CPU can do when the same cores also decode the JPEGs"),
    ]
    return rows, {"ips": ips, "rss": rss, "done": done, "bare": bare, "ceiling": ceiling}


def ingest_section(
    model: str, embedder: Any, sizes: Sizes, work: Path, log: Callable[[str], None]
) -> list[Row]:
    slow = model == BENCH_MODEL and embedder.precision == "fp32"  # ~35 img/s: 10k is 5 min
    n = sizes.images if slow else max(sizes.images, sizes.memory_images)
    folder, small = work / f"images-{n}", work / f"images-{sizes.images}"
    for path, count in ((folder, n), (small, sizes.images)):
        if not path.is_dir() or len(list(path.glob("*.jpg"))) < count:
            write_jpegs(path, count)  # deterministic: the small set is the big one's start
    label = f"{model} {embedder.precision}"
    rows, got = ingest_rows(label, embedder, folder, work / f"ingest-{model}.db", sizes)
    naive_paths = sorted(small.glob("*.jpg"))[: sizes.naive_images]
    naive = naive_ingest(embedder, naive_paths, work / f"naive-{model}.db")
    log(
        f"ingest {label}: {got['ips']:.1f} img/s (n={got['done']:.0f}), bare {got['bare']:.1f}, "
        f"ceiling {got['ceiling']:.1f}, naive {naive:.1f}, rss {got['rss']:.0f} MiB"
    )
    rows += [
        Row("ingest", f"{label} ingest vs naive per-row pipeline", got["ips"], "img/s", naive,
            f"naive decode-embed-insert 1 row ({len(naive_paths)} imgs), same precision", ">= 3"),
        Row("memory", f"{label} peak RSS, ingest of {got['done']:.0f} images (+ Milvus Lite)",
            got["rss"], "MiB"),
    ]
    if model == BENCH_MODEL and embedder.precision != "fp32":  # the pipeline at fp32 cost too
        fp32 = load_embedder(model, batch_size=sizes.batch_size, precision="fp32")
        more, got32 = ingest_rows(
            f"{model} fp32", fp32, small, work / f"ingest-{model}-fp32.db", sizes
        )
        log(f"ingest {model} fp32: {got32['ips']:.1f} img/s, bare {got32['bare']:.1f}")
        rows += more
    return rows


# ----- search over HTTP -------------------------------------------------------------------


def size_label(n: int) -> str:
    """10000 -> '10k', 1000000 -> '1M', 500 -> '500'."""
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


class Client:
    """A keep-alive HTTP client that sends headers and body in one write (as browsers do).

    httpx writes them separately, and on loopback Nagle + delayed ACK can then add ~40 ms to
    a request, which would be measuring the client, not the server.
    """

    def __init__(self, port: int, timeout: float = 120.0) -> None:
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)

    def get(self, path: str) -> int:
        self.conn.request("GET", path)
        resp = self.conn.getresponse()
        resp.read()
        return resp.status

    def search(self, query: str) -> float:
        """POST /search; returns the server's own took_ms."""
        body = json.dumps({"query": query, "k": 10})
        self.conn.request(
            "POST", "/search", body=body, headers={"Content-Type": "application/json"}
        )
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"/search answered {resp.status}: {data[:300]!r}")
        return float(json.loads(data).get("took_ms", 0.0))

    def close(self) -> None:
        self.conn.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """What one server run measured: 1-client and N-client latencies, QPS, peak RSS."""

    one_ms: np.ndarray
    took_ms: np.ndarray
    qps: float
    many_ms: np.ndarray
    rss_mib: float


def fill_search_db(
    db: Path, model: str, embedder: Any, vectors: np.ndarray, index_type: str = "auto"
) -> None:
    """A collection "bench" of ``vectors`` (ids v0, v1, ...) recording ``model``'s random
    checkpoint as its spec, flushed; kept when already full."""
    from retrieval.stores import open_store
    from retrieval.types import Record

    spec = {"model": model, "pretrained": None, "checkpoint": str(checkpoint_for(model))}
    store = open_store(str(db), "bench", index_type=index_type)
    try:
        if store.exists() and store.count() >= len(vectors):
            return
        store.ensure_collection(embedder.dim, embedder.model_id, spec=spec)
        for start in range(0, len(vectors), 1000):
            store.add(
                [
                    Record(id=f"v{start + i}", vector=v, source=f"/img/{start + i}.jpg")
                    for i, v in enumerate(vectors[start : start + 1000])
                ]
            )
        store.flush()
    finally:
        store.close()


def serve_and_load(
    model: str, db: Path, sizes: Sizes, *, one_client: bool = True, env_extra: dict | None = None
) -> Served:
    """Start ``mmrag serve`` on ``db``; time 1-client queries, then N concurrent clients."""
    port = _free_port()
    env = {
        **os.environ,
        "MMRAG_URI": str(db),
        "MMRAG_COLLECTION": "bench",
        "MMRAG_MODEL": model,
        "MMRAG_CHECKPOINT": str(checkpoint_for(model)),
        "MMRAG_DEVICE": "cpu",
        "MMRAG_LOG_LEVEL": "warning",
        **(env_extra or {}),
    }
    env.pop("MMRAG_PRETRAINED", None)
    if sizes.torch_threads:
        env["MMRAG_TORCH_THREADS"] = str(sizes.torch_threads)
    env["MMRAG_PRECISION"] = sizes.precision
    server = subprocess.Popen(
        [sys.executable, "-m", "mmrag", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with PeakRss(server.pid, every_s=0.2) as rss:
            _wait_ready(server, port)
            client = Client(port)
            for text in warm_texts(seed=7):  # same warm-up as the bare path got
                client.search(text)
            one, took = [], []
            for query in unique_queries(sizes.queries if one_client else 0, seed=31):
                started = time.perf_counter()
                took.append(client.search(query))
                one.append(time.perf_counter() - started)
            client.close()
            qps, many_ms = _concurrent_load(port, sizes)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
    return Served(np.array(one) * 1e3, np.array(took), qps, many_ms, rss.mib)


def _wait_ready(server: subprocess.Popen, port: int, timeout_s: float = 180.0) -> None:
    deadline = time.time() + timeout_s
    while True:
        client = Client(port)
        try:
            if client.get("/ready") == 200:
                return
        except OSError:
            pass
        finally:
            client.close()
        if server.poll() is not None or time.time() > deadline:
            err = server.stderr.read().decode()[-2000:] if server.stderr else ""
            raise RuntimeError(f"server did not become ready: {err}")
        time.sleep(0.5)


def _concurrent_load(port: int, sizes: Sizes) -> tuple[float, np.ndarray]:
    """Queries/s and per-query ms of ``sizes.clients`` keep-alive clients, after a warm-up."""
    lat: list[float] = []
    lock = threading.Lock()

    def worker(chunk: list[str]) -> None:
        c = Client(port)
        try:
            for q in chunk:
                t0 = time.perf_counter()
                c.search(q)
                with lock:
                    lat.append(time.perf_counter() - t0)
        finally:
            c.close()

    n = sizes.clients
    warm_q = unique_queries(n * 2, seed=43)  # warm the batch shapes
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(worker, [warm_q[i::n] for i in range(n)]))
    lat.clear()
    many_q = unique_queries(sizes.concurrent_queries, seed=41)
    started = time.perf_counter()
    with ThreadPoolExecutor(n) as pool:
        list(pool.map(worker, [many_q[i::n] for i in range(n)]))
    wall = time.perf_counter() - started
    return len(many_q) / wall, np.array(lat) * 1e3


def batched_ceiling(store: Any, embedder: Any, sizes: Sizes) -> float:
    """Queries/s of "encode N texts, then one store.search of N" in process, no HTTP: what the
    server's two micro-batchers do, and so the most it can serve N clients."""
    batch_q = unique_queries(sizes.clients * 8, seed=23)
    groups = [batch_q[i : i + sizes.clients] for i in range(0, len(batch_q), sizes.clients)]
    for group in groups:  # warm every batch shape first: a steady state, as the server's is
        store.search(embedder.embed_texts(group), k=10)
    started = time.perf_counter()
    for group in groups:
        store.search(embedder.embed_texts(group), k=10)
    return len(batch_q) / (time.perf_counter() - started)


def _pct(a: np.ndarray) -> str:
    return "/".join(f"{np.percentile(a, p):.0f}" for p in (50, 95, 99))


def search_section(
    model: str, embedder: Any, text_info: dict, sizes: Sizes, work: Path, log: Callable[[str], None]
) -> list[Row]:
    """HTTP search latency (1 and N clients) against text encode + one store search in process;
    then N clients over clustered vectors with an IVF_FLAT index (``sizes.ann_vectors``)."""
    from mmrag.bench.store import unit_vectors
    from retrieval.stores import open_store

    db = work / f"search-{model}-{sizes.vectors}.db"
    fill_search_db(db, model, embedder, unit_vectors(sizes.vectors, embedder.dim, seed=5))
    store = open_store(str(db), "bench")
    queries = unique_queries(sizes.queries, seed=21)
    for text in warm_texts(seed=3):
        store.search(embedder.embed_texts([text]), k=10)
    bare = []
    for query in queries:
        started = time.perf_counter()
        store.search(embedder.embed_texts([query]), k=10)
        bare.append(time.perf_counter() - started)
    bare_ms = np.array(bare) * 1e3
    batched_qps = batched_ceiling(store, embedder, sizes)
    store.close()
    run = serve_and_load(model, db, sizes)
    log(
        f"search {model}: bare p50 {np.median(bare_ms):.1f} ms, http1 {_pct(run.one_ms)} "
        f"(server took_ms p50 {np.median(run.took_ms):.1f}), "
        f"{sizes.clients} clients {run.qps:.1f} qps {_pct(run.many_ms)}"
    )
    ceiling = text_info["text_batch_per_s"]
    n = size_label(sizes.vectors)
    rows = [
        Row(
            "search",
            f"{model} HTTP /search p50, 1 client, {n} vectors",
            float(np.median(run.one_ms)),
            "ms",
            float(np.median(bare_ms)),
            "text encode + store.search in process",
            "<= 1.3",
            f"p50/p95/p99 {_pct(run.one_ms)} ms; server took_ms p50 {np.median(run.took_ms):.0f}; "
            f"bare {_pct(bare_ms)} ms",
        ),
        Row(
            "search",
            f"{model} HTTP QPS, {sizes.clients} clients, {n} vectors",
            run.qps,
            "q/s",
            ceiling,
            f"bare text encode, batch {sizes.text_batch}",
            ">= 0.8",
            f"p50/p95/p99 {_pct(run.many_ms)} ms; FLAT (exact), the Lite default",
        ),
        Row(
            "search",
            f"{model} HTTP QPS, {sizes.clients} clients, vs batched encode + search",
            run.qps,
            "q/s",
            batched_qps,
            f"encode {sizes.clients} texts + one store.search of {sizes.clients}, in process",
            "",
            "the system's own ceiling: the store search is part of every query",
        ),
        Row(
            "memory",
            f"{model} server peak RSS under load (+ Milvus Lite, {n} vectors)",
            run.rss_mib,
            "MiB",
        ),
    ]
    if sizes.ann_vectors:
        rows += ann_search_rows(model, embedder, ceiling, sizes, work, log)
    return rows


def ann_search_rows(
    model: str, embedder: Any, ceiling: float, sizes: Sizes, work: Path, log: Callable[[str], None]
) -> list[Row]:
    """N-client QPS over clustered vectors (like real embeddings) with IVF_FLAT on Lite, and
    that index's recall@10 against exact search on held-out queries of the same mixture."""
    from mmrag.bench.store import dataset, exact_top_k, recall_at_k
    from retrieval.stores import open_store

    n = sizes.ann_vectors
    base, held_out, _, _ = dataset("clustered", n, sizes.store_queries, embedder.dim)
    db = work / f"ivf-{model}-{n}.db"  # Lite file names: at most 36 characters
    fill_search_db(db, model, embedder, base, index_type="IVF_FLAT")
    store = open_store(str(db), "bench")
    found = [[int(h.id[1:]) for h in hits] for hits in store.search(held_out, k=10)]
    in_process = batched_ceiling(store, embedder, sizes)
    store.close()
    truth, _ = exact_top_k(base, held_out, 10)
    recall = recall_at_k(found, truth)
    del base
    run = serve_and_load(model, db, sizes, one_client=False,
                         env_extra={"MMRAG_INDEX_TYPE": "IVF_FLAT"})
    log(f"search {model} IVF_FLAT {size_label(n)} clustered: {run.qps:.1f} qps "
        f"{_pct(run.many_ms)}, recall@10 {recall:.3f}")
    label = f"{size_label(n)} clustered vectors, IVF_FLAT"
    return [
        Row(
            "search",
            f"{model} HTTP QPS, {sizes.clients} clients, {label}",
            run.qps,
            "q/s",
            ceiling,
            f"bare text encode, batch {sizes.text_batch}",
            ">= 0.8",
            f"p50/p95/p99 {_pct(run.many_ms)} ms; MMRAG_INDEX_TYPE=IVF_FLAT; recall@10 "
            f"{recall:.3f} on held-out queries of the same mixture",
        ),
        Row(
            "search",
            f"{model} HTTP QPS, {sizes.clients} clients, {label}, vs batched encode + search",
            run.qps,
            "q/s",
            in_process,
            f"encode {sizes.clients} texts + one store.search of {sizes.clients}, in process",
            "",
            "the system's own ceiling with this index",
        ),
        Row(
            "search",
            f"Lite IVF_FLAT recall@10 vs exact, {label}",
            recall,
            "",
            1.0,
            "exact (numpy)",
            ">= 0.95",
            f"{len(held_out)} held-out queries",
        ),
    ]


# ----- store ------------------------------------------------------------------------------


STORE_SMALL_MAX = 100_000  # AUTOINDEX runs up to this size (it is IVF_FLAT on Lite 2.5.1)
UPSERT_BATCH_KIB = (512, 1024, 2048, 4096)  # bytes per upsert call tried (mmrag: BATCH_BYTES)


def store_section(
    sizes: Sizes,
    dim: int,
    log: Callable[[str], None],
    python: str | None = None,
    metrics: tuple[str, ...] = ("IP",),
) -> tuple[list[Row], dict]:
    """Store figures from mmrag/bench/store.py in a child process (any interpreter): insert,
    search and recall@10 per size, data set (uniform, clustered) and index type; then, with the
    project's interpreter, MilvusStore.upsert rows/s against bytes per call."""
    from retrieval.stores.milvus_rows import IVF_NLIST, IVF_NPROBE

    started = time.perf_counter()
    config = {
        "sizes": sizes.store_sizes,
        "dim": dim,
        "queries": sizes.store_queries,
        "exact_queries": min(20, sizes.store_queries),
        # The first index type of a data set is inserted (timed); the others replace the index
        # on the same rows. AUTOINDEX is IVF_FLAT's twin on Lite 2.5.1: not run at 1M.
        "datasets": {
            "uniform": ["FLAT", "IVF_FLAT", ["AUTOINDEX", STORE_SMALL_MAX]],
            "clustered": ["IVF_FLAT", ["AUTOINDEX", STORE_SMALL_MAX]],
        },
        "metrics": list(metrics),
        "params": {
            "nlist": IVF_NLIST,
            "nprobe": IVF_NPROBE,
            "nprobes": sorted({8, IVF_NPROBE, 64}),
            "insert_batch": 256,
            # Lite 3.2.2 cannot reload (docs/benchmarks.md); the clustered set skips it (time)
            "reload": ["uniform"] if python is None else False,
        },
    }
    script = Path(__file__).with_name("store.py")
    out = subprocess.run(
        [python or sys.executable, str(script), json.dumps(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        reason = (out.stderr.strip().splitlines() or ["no output"])[-1][:200]
        log(f"store section with {python or sys.executable} failed: {reason}")
        return [
            Row(
                "store",
                f"store figures with {python or sys.executable}",
                None,
                "",
                note=f"failed: {reason}",
            )
        ], {"error": out.stderr[-4000:]}
    data = json.loads(out.stdout.strip().splitlines()[-1])
    tag = f"Lite {data['milvus_lite']}"
    rows = [_index_types_row(tag, data.get("index_types", {}))]
    about = {(d["size"], d["dataset"]): d for d in data.get("datasets", [])}
    for r in data["results"]:
        rows += _store_rows(tag, dim, r, about.get((r["size"], r["dataset"]), {}), log)
    log(f"store figures ({tag}): {data.get('elapsed_s', 0):.0f} s")
    if python is None:
        batch_rows, data["upsert_batches"] = upsert_batch_section(sizes, dim, log)
        rows += batch_rows
    data["section_s"] = time.perf_counter() - started
    log(f"store section: {data['section_s']:.0f} s")
    return rows, data


def _index_types_row(tag: str, types: dict[str, str]) -> Row:
    """Which index types the store accepted (and the refusal it gave for the others)."""
    accepted = [name for name, said in types.items() if said == "ok"]
    refused = {name: said for name, said in types.items() if said != "ok"}
    note = f"accepted {', '.join(accepted) or 'none'}"
    if refused:
        first = next(iter(refused.values()))
        note += f"; refused {', '.join(refused)} ({first[:120]})"
    return Row("store", f"{tag} index types", None, "", note=note)


def _store_rows(
    tag: str, dim: int, r: dict[str, Any], about: dict[str, Any], log: Callable[[str], None]
) -> list[Row]:
    """Search (and recall, for ANN indexes) and insert rows of one store.py result."""
    label = f"{tag} {r['index']}/{r['metric']} {size_label(r['size'])}x{dim} {r['dataset']}"
    if "error" in r or "search_ms_p50" not in r:
        log(f"store {label}: failed: {r.get('error', 'no result')}")
        return [Row("store", label, None, "", note=f"failed: {r.get('error', 'no result')}")]
    notes = [f"recall@10 {r['recall_at_10']:.3f}", f"mean {r['search_ms_mean']:.1f} ms"]
    sweep = r.get("sweep", [])
    if len(sweep) > 1:
        notes.append(
            "nprobe " + "/".join(str(s["nprobe"]) for s in sweep)
            + ": recall " + "/".join(f"{s['recall_at_10']:.3f}" for s in sweep)
            + ", p50 " + "/".join(f"{s['search_ms_p50']:.1f}" for s in sweep) + " ms"
        )
    if "switch_s" in r:
        notes.append(f"index replaced in {r['switch_s']:.1f} s")
    rows = [
        Row("store", f"{label} search, 1 query", r["search_ms_p50"], "ms",
            r["exact_numpy_ms"], "exact numpy (brute force)", "", "; ".join(notes))
    ]
    if r["index"] != "FLAT":
        facts = []
        if len(sweep) > 1 and len({round(s["recall_at_10"], 9) for s in sweep}) == 1:
            facts.append("same recall at every nprobe")
        if "same_cluster_top10" in about:
            facts.append(f"true top-10 in the query's cluster {about['same_cluster_top10']:.0%}")
        if "nn1_cos" in about:
            facts.append(f"true 1st/10th neighbour cosine {about['nn1_cos']:.2f}/"
                         f"{about['nn10_cos']:.2f}")
        rows.append(Row("store", f"{label} recall@10 vs exact", r["recall_at_10"], "", 1.0,
                        "exact", ">= 0.95", "; ".join(facts)))
    if "insert_rows_s" in r:
        note = f"{r.get('insert_batch', 256)} rows (int64 id + vector) a call, flushed"
        if "load_s" in r:
            note += f"; release + load {r['load_s']:.1f} s"
        rows.append(Row("store", f"{label} insert", r["insert_rows_s"], "rows/s", note=note))
    log(f"store {label}: {r['search_ms_p50']:.1f} ms, recall {r['recall_at_10']:.3f}"
        + (f", {r['insert_rows_s']:.0f} rows/s" if "insert_rows_s" in r else ""))
    return rows


def _bench_records(n: int, dim: int, seed: int) -> list[Any]:
    """Rows shaped like ingest's: content-hash id, file path, caption, a few metadata keys."""
    from mmrag.bench.store import unit_vectors
    from retrieval.ids import content_id
    from retrieval.types import Modality, Record

    vectors = unit_vectors(n, dim, seed)
    words = ["dog", "cat", "red car", "beach at sunset"]
    return [
        Record(
            id=content_id(f"{seed}-{i}".encode()),
            vector=vectors[i],
            source=f"/data/photos/2024/album-{i // 500:04d}/IMG_{i:06d}.jpg",
            caption=f"a photo of a {words[i % 4]} number {i} in the park",
            modality=Modality.IMAGE,
            metadata={"label": words[i % 4], "width": 640, "height": 480, "year": 2024},
            model_id="bench-model",
        )
        for i in range(n)
    ]


def upsert_batch_section(
    sizes: Sizes, dim: int, log: Callable[[str], None]
) -> tuple[list[Row], list[dict[str, Any]]]:
    """MilvusStore.upsert rows/s into Milvus Lite against bytes per call (BATCH_BYTES), on an
    empty file and, in full mode, on one already holding 100k rows: Lite runs each upsert as
    a SQLite delete that scans the whole table, so the best call size grows with the file."""
    import psutil

    from retrieval.stores import milvus_rows
    from retrieval.stores.milvus import MilvusStore

    chosen = milvus_rows.upsert_batch_bytes(True)
    trial = min(4096, max(sizes.store_sizes))
    levels = [0] + ([100_000] if max(sizes.store_sizes) >= 100_000 else [])
    work = Path(tempfile.mkdtemp(prefix="mmrag-bench-upsert-"))
    saved = milvus_rows.BATCH_BYTES
    results: list[dict[str, Any]] = []
    try:
        for level in levels:
            store = MilvusStore(str(work / f"upsert{level}.db"), "bench", index_type="FLAT")
            try:
                store.ensure_collection(dim, "bench-model")
                client = store._client  # plain inserts fill fast (no delete scan per call)
                assert client is not None
                for start in range(0, level, 4096):
                    recs = _bench_records(min(4096, level - start), dim, seed=1000 + start)
                    fill = [milvus_rows.to_row(r, dim=dim, model_id="bench-model",
                                               collection="bench") for r in recs]
                    for chunk in milvus_rows.chunks_by_size(fill, dim, 1 << 20):
                        client.insert("bench", chunk)
                lite = [p for p in psutil.Process().children(recursive=True)
                        if "milvus" in p.name()]
                for kib in UPSERT_BATCH_KIB:
                    milvus_rows.BATCH_BYTES = kib * 1024
                    recs = _bench_records(trial, dim, seed=kib)
                    per_call = len(next(milvus_rows.chunks_by_size(
                        [milvus_rows.to_row(r, dim=dim, model_id="bench-model",
                                            collection="bench") for r in recs], dim)))
                    cpu0 = _cpu_seconds(lite)
                    t0 = time.perf_counter()
                    store.upsert(recs)
                    wall = time.perf_counter() - t0
                    cpu = _cpu_seconds(lite) - cpu0
                    results.append({"stored": level, "kib": kib, "rows_per_call": per_call,
                                    "rows": trial, "rows_s": trial / wall,
                                    "cpu_rows_s": trial / cpu if cpu > 0 else None})
            finally:
                store.close()
    finally:
        milvus_rows.BATCH_BYTES = saved
        shutil.rmtree(work, ignore_errors=True)
    rows: list[Row] = []
    for res in results:
        base = next(x for x in results
                    if x["stored"] == res["stored"] and x["kib"] * 1024 == chosen)
        held = size_label(res["stored"]) if res["stored"] else "empty"
        mine = res["kib"] * 1024 == chosen
        cpu_note = (f"; CPU (client + Lite) {res['cpu_rows_s']:,.0f} rows/s"
                    if res["cpu_rows_s"] else "")
        rows.append(Row(
            "store",
            f"MilvusStore.upsert {dim}-d rows, Lite file {held}, {_kib(res['kib'])} a call",
            res["rows_s"], "rows/s",
            None if mine else base["rows_s"],
            "" if mine else f"{_kib(chosen // 1024)} a call (BATCH_BYTES)",
            "",
            f"~{res['rows_per_call']} rows a call, {res['rows']} rows{cpu_note}"
            + ("; BATCH_BYTES (chosen)" if mine else "")
            + ("" if res["stored"] else "; empty file: Lite's per-call table scan is free"),
        ))
        log(f"upsert into {held}: {_kib(res['kib'])} a call ({res['rows_per_call']} rows): "
            f"{res['rows_s']:,.0f} rows/s")
    return rows, results


def _kib(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib % 1024 == 0 else f"{kib} KiB"


def _cpu_seconds(procs: list[Any]) -> float:
    """User + system CPU seconds of this process and the given children."""
    import psutil

    total = 0.0
    for proc in [psutil.Process(), *procs]:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def temp_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="mmrag-bench-"))


def cleanup(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
