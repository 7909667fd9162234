#!/usr/bin/env bash
# Set up (see install.sh) and run every check: lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev --model smollm2-135m
bash scripts/system-deps.sh
export KIBITZ_REQUIRE_MODELS=1 HF_HUB_OFFLINE=1
# Where the display tools are present, a display test that cannot run is a failure, not a skip.
if command -v Xvfb >/dev/null && command -v xdotool >/dev/null && command -v xclock >/dev/null && [ -x /usr/games/sgt-mines ]; then
  export KIBITZ_REQUIRE_DISPLAY=1
fi
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
.venv/bin/python -m pytest -q "$@"
