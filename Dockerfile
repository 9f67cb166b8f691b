# The mmrag search API (`mmrag serve`), CPU by default.
#
#   docker build -t mmrag .                      # CPU torch wheels (download.pytorch.org/whl/cpu)
#   docker build -t mmrag:gpu \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 .
#                                                # CUDA torch wheels (they bundle the CUDA
#                                                # runtime; the host needs the NVIDIA driver and
#                                                # the NVIDIA Container Toolkit: --gpus all, or
#                                                # docker-compose.gpu.yml)
#
# See README "Scale out" and docker-compose.yml (Milvus standalone + this API).
FROM python:3.11-slim

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# libgomp1: OpenMP for torch CPU kernels; libglib2.0-0: OpenCV's video I/O.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# torch first (the heavy, rarely changing layer), from the CPU or CUDA wheel index.
RUN pip install --index-url "${TORCH_INDEX_URL}" torch torchvision

WORKDIR /app
COPY pyproject.toml README.md ./
COPY retrieval ./retrieval
COPY pipelines ./pipelines
COPY ingest ./ingest
COPY mmrag ./mmrag
RUN pip install . && python -c "import mmrag, retrieval.api"

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin mmrag \
    && mkdir -p /home/mmrag/.cache /data \
    && chown -R mmrag:mmrag /home/mmrag /data
USER mmrag
WORKDIR /home/mmrag
# Model weights downloaded on first start land here (mount a volume to keep them).
ENV HF_HOME=/home/mmrag/.cache/huggingface \
    MMRAG_DEVICE=auto

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["mmrag", "serve", "--host", "0.0.0.0", "--port", "8000"]
