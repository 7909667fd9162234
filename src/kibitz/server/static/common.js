// What the app and the overlay share: the token, the WebSocket URL, and building DOM nodes without innerHTML
// (every string from the server is text, never markup).
"use strict";

const kibitz = (window.kibitz = window.kibitz || {});

kibitz.tokenFromHash = function (storageKey) {
  // A token in the URL's fragment (never sent to the server in a request line) moves to this browser's storage.
  const match = /(?:^|[#&])token=([^&]+)/.exec(location.hash);
  if (match) {
    const token = decodeURIComponent(match[1]);
    if (storageKey) localStorage.setItem(storageKey, token);
    history.replaceState(null, "", location.pathname + location.search);
    return token;
  }
  return storageKey ? localStorage.getItem(storageKey) : null;
};

kibitz.wsUrl = function () {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
};

kibitz.el = function (tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
};

// --- the companion's voice: `audio` pieces played back to back in one AudioContext; `hush` stops them at once ------
kibitz.speech = (function () {
  const LEAD_S = 0.05; // the first piece starts this far ahead, so a piece is never scheduled in the past
  const speech = { played: 0, hushed: 0 }; // pieces scheduled, and hushes: the tests read them
  let ctx = null;
  let nextTime = 0; // when the queued speech ends (the AudioContext's clock)
  const playing = new Set(); // the scheduled AudioBufferSourceNodes, so a hush can stop them all

  function context() {
    if (!ctx) {
      const Context = window.AudioContext || window.webkitAudioContext;
      if (!Context) return null;
      ctx = new Context();
    }
    return ctx;
  }

  function resume() {
    // Browsers start an AudioContext suspended until the user has touched the page (their autoplay policy).
    const audio = context();
    if (audio && audio.state === "suspended") audio.resume().catch(() => {});
    return audio;
  }

  speech.play = function (msg) {
    const audio = resume();
    if (!audio || !msg.pcm16) return;
    const bytes = atob(msg.pcm16);
    const n = bytes.length >> 1;
    if (!n) return;
    const buffer = audio.createBuffer(1, n, msg.rate); // the browser resamples 24 kHz to its own rate
    const data = buffer.getChannelData(0);
    for (let i = 0; i < n; i++) {
      const value = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8); // 16-bit little-endian
      data[i] = (value >= 0x8000 ? value - 0x10000 : value) / 32768;
    }
    const source = audio.createBufferSource();
    source.buffer = buffer;
    source.connect(audio.destination);
    nextTime = Math.max(audio.currentTime + LEAD_S, nextTime);
    source.start(nextTime);
    nextTime += buffer.duration;
    playing.add(source);
    source.onended = () => playing.delete(source);
    speech.played++;
  };

  speech.stop = function () {
    // Silence now: stop what plays and drop what is queued.
    for (const source of playing) {
      try { source.stop(); } catch (_) { /* not started yet, or already ended */ }
    }
    playing.clear();
    nextTime = 0;
  };

  speech.hush = function () {
    speech.stop();
    speech.hushed++;
  };

  speech.speaking = function () {
    return Boolean(ctx) && nextTime > ctx.currentTime;
  };

  for (const type of ["pointerdown", "keydown", "touchstart"]) {
    window.addEventListener(type, resume, { capture: true, passive: true });
  }
  return speech;
})();
