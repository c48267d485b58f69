#!/usr/bin/env bash
# The test command: lint, type-check and run the whole test suite in .venv/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh train,dev
export MPLBACKEND=Agg
echo "== ruff";     .venv/bin/ruff check pipeline training geokr_testkit tests benchmarks
echo "== mypy";     .venv/bin/mypy
echo "== hadolint"; .venv/bin/hadolint docker/Dockerfile.etl docker/Dockerfile.train
echo "== pytest";   .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
