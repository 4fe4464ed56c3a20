# Switchboard gateway image: `podman build --format docker -t switchboard .` (or `docker build -t switchboard .`),
# then run it with port 4000 published. Without SWITCHBOARD_CONFIG it serves the embedded default on the built-in
# provider simulator; deploy/test-image.sh builds this file here and serves one request through the result.

# Builder: a venv at /opt/venv holding the wheel built from this checkout (a normal, non-editable install), with
# the litellm extra: the embedded default and any non-OpenAI-compatible upstream need it.
FROM debian:bookworm-slim AS builder
ENV DEBIAN_FRONTEND=noninteractive \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY router ./router
COPY classifiers ./classifiers
COPY policies ./policies
# Where pip finds packages, e.g. a CPU-only torch index (PyPI's default Linux torch wheel carries CUDA) or a local
# mirror mounted into the build, and the CA bundle behind a TLS-inspecting proxy; unset = PyPI only.
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_CERT
# pip compiles the bytecode here (COPY --from keeps the timestamps it checks): a start never recompiles.
RUN /opt/venv/bin/pip wheel --no-deps --wheel-dir /tmp/dist . \
    && /opt/venv/bin/pip install "$(ls /tmp/dist/switchboard-*.whl)[litellm]" \
    && /opt/venv/bin/pip uninstall -y pip setuptools

# Runtime: Debian's python3.11 and the venv; no compiler, no pip, no sources.
FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
    && useradd --uid 10001 --user-group --home-dir /var/lib/switchboard --create-home \
        --shell /usr/sbin/nologin switchboard
COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    LITELLM_TELEMETRY_DISABLED=true \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=4000 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
WORKDIR /var/lib/switchboard
EXPOSE 4000
# Docker-format images keep this (OCI ones drop it): build with `podman build --format docker`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; url = 'http://127.0.0.1:%s/healthz' % os.environ.get('SWITCHBOARD_PORT', '4000'); sys.exit(0 if urllib.request.urlopen(url, timeout=2).status == 200 else 1)"]
ENTRYPOINT ["switchboard", "serve"]
