#!/usr/bin/env bash
# Create .venv/ at the repo root when missing and install the project into it.
# The one install recipe: the README commands and both Dockerfiles use it.
#   scripts/install.sh [--no-editable] [EXTRAS]     EXTRAS defaults to "train,dev"
# The README's commands install editable (a checkout you change); the images use
# --no-editable, a regular install as from a wheel (catalogs/ ships as package data).
set -euo pipefail
cd "$(dirname "$0")/.."
mode="-e"
kind=""
if [ "${1:-}" = "--no-editable" ]; then
    mode=""
    kind="-no-editable"
    shift
fi
extras="${1:-train,dev}"
python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
stamp=".venv/.geokr-install-$(cat setup.cfg pyproject.toml | sha256sum | cut -c1-16)-${extras//,/-}${kind}"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086  # $mode is empty or one word
    .venv/bin/python -m pip install --quiet $mode ".[${extras}]"
    touch "$stamp"
fi
