#!/usr/bin/env bash
# Best effort: the Debian packages the display tests use (a virtual X screen, window lookup, a real window,
# a real desktop game: Mines from sgt-puzzles) and Stockfish, the bench's chess answer key (GPL-3, a separate
# program).
# Needs root and apt-get; without them the display tests are skipped with their reason.
set -uo pipefail
need=""
command -v Xvfb >/dev/null 2>&1 || need="$need xvfb"
command -v xdotool >/dev/null 2>&1 || need="$need xdotool"
command -v xclock >/dev/null 2>&1 || need="$need x11-apps"
[ -x /usr/games/sgt-mines ] || need="$need sgt-puzzles"
command -v stockfish >/dev/null 2>&1 || [ -x /usr/games/stockfish ] || need="$need stockfish"
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null) \
    || echo "note: could not install$need; the tests that need them will be skipped"
else
  echo "note: install$need (apt-get, as root) to run the display tests; they will be skipped"
fi
exit 0
