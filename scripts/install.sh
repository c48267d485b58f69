#!/usr/bin/env bash
# Create .venv/ at the repo root when missing and install the project into it.
# The one install recipe: the README commands and both Dockerfiles use it.
#   scripts/install.sh [EXTRAS]     EXTRAS defaults to "train,dev"
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-train,dev}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.geokr-install-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-${extras//,/-}"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".[${extras}]"
    touch "$stamp"
fi
