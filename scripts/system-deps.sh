#!/usr/bin/env bash
# Best effort: the Debian packages voice needs (espeak-ng, libspeexdsp1, libportaudio2) and those the display tests use (a virtual X screen, window lookup, a real window,
# a real desktop game: Mines from sgt-puzzles), Stockfish, the bench's chess answer key (GPL-3, a separate
# program), and Chromium, the browser the web app's end-to-end tests drive.
# Needs root and apt-get. As root, a package that cannot be installed is an error (the tests need it); without
# root it says what to install, and the tests that need it skip, which scripts/test.sh counts as a failure.
set -uo pipefail
need=""
# --voice: only what voice needs (the Korean voice, echo cancellation, sound devices).
if [ "${1:-}" = "--voice" ]; then VOICE_ONLY=1; else VOICE_ONLY=0; fi
command -v espeak-ng >/dev/null 2>&1 || need="$need espeak-ng"
ldconfig -p 2>/dev/null | grep -q libspeexdsp.so.1 || need="$need libspeexdsp1"
ldconfig -p 2>/dev/null | grep -q libportaudio.so.2 || need="$need libportaudio2"
if [ "$VOICE_ONLY" = 0 ]; then
command -v Xvfb >/dev/null 2>&1 || need="$need xvfb"
command -v xdotool >/dev/null 2>&1 || need="$need xdotool"
command -v xclock >/dev/null 2>&1 || need="$need x11-apps"
[ -x /usr/games/sgt-mines ] || need="$need sgt-puzzles"
command -v stockfish >/dev/null 2>&1 || [ -x /usr/games/stockfish ] || need="$need stockfish"
command -v chromium >/dev/null 2>&1 || need="$need chromium"
fi
[ -z "$need" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  if ! (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need >/dev/null); then
    echo "system-deps.sh: could not install$need with apt-get; the display and chess tests need them" >&2
    exit 1
  fi
else
  echo "note: install$need (apt-get, as root) to run the display tests; they will be skipped"
fi
exit 0
