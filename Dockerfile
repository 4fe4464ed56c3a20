# Switchboard gateway. Build: docker build -t switchboard .   Run: docker run -p 4000:4000 switchboard
# Without SWITCHBOARD_CONFIG it serves the embedded default on the built-in provider simulator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    LITELLM_TELEMETRY_DISABLED=true \
    SWITCHBOARD_HOST=0.0.0.0 \
    SWITCHBOARD_PORT=4000 \
    SWITCHBOARD_DATA_DIR=/var/lib/switchboard

RUN useradd --create-home --uid 10001 switchboard \
    && mkdir -p /var/lib/switchboard && chown switchboard /var/lib/switchboard
WORKDIR /app
COPY pyproject.toml README.md ./
COPY router ./router
COPY classifiers ./classifiers
COPY policies ./policies
# torch is pinned to 2.13.0. Pass --build-arg PIP_EXTRA_INDEX_URL=<a CPU-only torch index> to keep the
# image small; PyPI's default Linux wheel of torch carries CUDA.
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install -e .

USER switchboard
EXPOSE 4000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:4000/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["switchboard", "serve"]
