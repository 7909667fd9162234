#!/usr/bin/env bash
# Set up (see install.sh) and run every check: lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev --model smollm2-135m
export KIBITZ_REQUIRE_MODELS=1 HF_HUB_OFFLINE=1
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
