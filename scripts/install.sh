#!/usr/bin/env bash
# Set up kibitz in ./.venv: Python packages, the llama.cpp runtime (built once as a portable wheel and
# cached in ~/.cache/kibitz/wheels), the Super Mario Bros. ROM package, an embedded model, and what pixel
# perception learns from the built-in games (their HUD fonts and scenes, ~1.5 min the first time).
#   bash scripts/install.sh                 # runtime + default model (qwen2.5-coder-1.5b, 1.1 GB)
#   bash scripts/install.sh --voice         # also voice: speech recognition and voices (GPL-3 piper, ~300 MB)
#   bash scripts/install.sh --dev --model smollm2-135m   # what the tests need (voice included)
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
VOICE=0
MODEL="qwen2.5-coder-1.5b"
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1; VOICE=1 ;;
    --voice) VOICE=1 ;;
    --model) MODEL="$2"; shift ;;
    --no-model) MODEL="" ;;
    *) echo "install.sh: unknown option $1 (use --dev, --voice, --model NAME, --no-model)" >&2; exit 2 ;;
  esac
  shift
done

CACHE="${KIBITZ_HOME:-$HOME/.cache/kibitz}"
WHEELS="$CACHE/wheels"
PY="${PYTHON:-python3}"
mkdir -p "$WHEELS"

[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=.venv/bin/python
PIP="$VPY -m pip --disable-pip-version-check -q"

# llama-cpp-python compiles llama.cpp (~5 min on 2 cores): build a portable AVX2 wheel once, reuse it.
# --no-cache-dir: otherwise pip may silently reuse an earlier native (e.g. AVX-512) build.
LLAMA_WHEEL=$(ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$LLAMA_WHEEL" ]; then
  echo "Building the llama.cpp runtime once (about 5 minutes); it is cached in $WHEELS"
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
    $PIP wheel --no-cache-dir --no-deps llama-cpp-python==0.3.36 -w "$WHEELS"
  LLAMA_WHEEL=$(ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl | head -n 1)
fi
$PIP install "$LLAMA_WHEEL"

# --dev: also what the tests use (postgres: the PostgreSQL memory store, tested against a real server).
if [ "$DEV" = 1 ]; then EXTRAS="all,bench,chess,dev,postgres,voice"; else EXTRAS="all"; fi
[ "$VOICE" = 1 ] && [ "$DEV" = 0 ] && EXTRAS="all,voice"
$PIP install -e ".[$EXTRAS]"
# The SMB ROM ships in gym-super-mario-bros; its nes-py dependency is not needed (kibitz uses cynes).
$PIP install --no-deps gym-super-mario-bros==7.4.0

if [ "$VOICE" = 1 ]; then
  # The Japanese voice's readings (OpenJTalk with its dictionary); its Sudachi dictionary dependency is unused.
  $PIP install --no-deps pyopenjtalk-plus==0.4.1.post10 sudachipy==0.7.0
  .venv/bin/kibitz models install whisper-base piper-joe-en kokoro-ja
  bash scripts/system-deps.sh --voice
fi
if [ -n "$MODEL" ]; then
  .venv/bin/kibitz models install "$MODEL"
fi
# Pixel perception: learn the built-in games' HUD fonts and scenes from their emulators (~1.5 min), once, and
# again whenever the HUD files changed since (a new field needs its digits learnt).
STAMP="$CACHE/vision/hud-files.sha256"
HUDS=$(cat src/kibitz/games/data/*.hud.yaml | sha256sum | cut -d' ' -f1)
if [ ! -d "$CACHE/vision/prototypes" ] || [ -z "$(ls -A "$CACHE/vision/prototypes" 2>/dev/null)" ] \
  || [ "$(cat "$STAMP" 2>/dev/null)" != "$HUDS" ]; then
  .venv/bin/kibitz games learn
  echo "$HUDS" > "$STAMP"
fi
echo "kibitz is installed in .venv (try: .venv/bin/kibitz --help)"
