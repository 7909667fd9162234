#!/usr/bin/env bash
# The README's screenshots of the web app and the overlay, taken by the browser test itself (headless Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
KIBITZ_SCREENSHOTS="$PWD/docs/images" .venv/bin/python -m pytest -q \
  tests/test_serve_browser.py::test_the_app_and_the_overlay_with_a_builtin_game \
  tests/test_serve_browser_voice.py::test_a_question_asked_aloud_in_the_app_is_heard_answered_and_spoken
echo "saved docs/images/serve-app.png, docs/images/serve-overlay.png and docs/images/app-voice.png"
