#!/usr/bin/env bash
# Install LiteLLM's own proxy server into a venv of its own, for the side-by-side benchmark only.
# It never goes into the project's venv: the gateway pins the litellm library (1.110.2), while the `proxy`
# extra installs here only up to 1.108.7. 1.107.x was a compromised release and must never be installed.
set -euo pipefail

LITELLM_PROXY_VERSION="1.108.7"
here="$(cd "$(dirname "$0")" && pwd)"
venv="${LITELLM_PROXY_VENV:-$here/.venv}"
python="${PYTHON:-python3.11}"

if [[ -x "$venv/bin/litellm" ]] && "$venv/bin/python" -c \
    "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_PROXY_VERSION')"; then
    echo "litellm proxy $LITELLM_PROXY_VERSION already installed in $venv"
    exit 0
fi

"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet "litellm[proxy]==$LITELLM_PROXY_VERSION"
echo "litellm proxy $LITELLM_PROXY_VERSION installed in $venv ($venv/bin/litellm)"
