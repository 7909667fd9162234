// The overlay: the companion's face, whose mouth moves while a line streams, and the line in a speech bubble.
// It connects with a read-only token and shows the lines of every session of its user; it reconnects by itself.
"use strict";

const { el } = kibitz;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const token = kibitz.tokenFromHash(null) || params.get("token");
const HOLD_MS = 6000; // a finished line stays this long
let current = null; // the line being shown: its session and number (an overlay follows every session of its player)
let hideTimer = null;
let talkTimer = null;
kibitz.lags = [];

if (params.get("panel") === "1") $("panel").hidden = false;
if (params.get("side") === "left") document.body.classList.add("left");

function problem(text) {
  $("problem").hidden = !text;
  $("problem").textContent = text || "";
}

function talking(on) {
  $("face").classList.toggle("talking", on);
  clearTimeout(talkTimer);
  if (on) talkTimer = setTimeout(() => talking(false), 700); // the mouth stops when the words stop
}

function show(line, text, append) {
  clearTimeout(hideTimer);
  if (line !== current) {
    current = line;
    $("said").textContent = "";
  }
  if (append) $("said").append(text);
  else $("said").textContent = text;
  $("bubble").hidden = false;
  kibitz.shownAt = performance.now();
}

const handlers = {
  token(msg) {
    show(msg.session + ":" + msg.line, msg.text, true);
    talking(true);
    // How long after the server had the piece it was on screen (same machine, same clock): `kibitz bench serve`.
    requestAnimationFrame(() => kibitz.lags.push(Date.now() / 1000 - msg.at));
  },
  line(msg) {
    show(msg.session + ":" + msg.line, msg.text, false);
    talking(false);
    hideTimer = setTimeout(() => { $("bubble").hidden = true; }, HOLD_MS);
  },
  state(msg) {
    $("p-game").textContent = msg.game || "–";
    $("p-scene").textContent = msg.scene;
    $("p-fields").replaceChildren(...Object.entries(msg.fields).slice(0, 6).map(([k, v]) =>
      el("tr", {}, el("th", {}, k), el("td", {}, v))));
    $("p-recent").replaceChildren(...msg.recent.slice(-3).map((s) => el("li", {}, s)));
  },
  // The companion's voice, when its player talks with it aloud. An OBS browser source plays the page's audio; with
  // its "Control audio via OBS" option ticked, that audio goes into OBS's mixer and so into the stream.
  audio(msg) {
    kibitz.speech.play(msg);
    talking(true);
  },
  hush() {
    kibitz.speech.hush(); // the player talked over it: the stream hears the cut too
    talking(false);
  },
  welcome() { problem(""); },
  error(msg) { problem(msg.message); },
};

function connect(delay) {
  if (!token) return problem("Add the overlay token to the URL: /overlay#token=kbzo_…");
  const ws = new WebSocket(kibitz.wsUrl());
  ws.onopen = () => ws.send(JSON.stringify({ type: "hello", v: 1, token, role: "overlay" }));
  ws.onmessage = (event) => {
    const msg = JSON.parse(event.data);
    (handlers[msg.type] || (() => {}))(msg);
  };
  ws.onclose = (event) => {
    // 1008: refused for good (a bad token); anything else (a restart, 1013 busy): try again.
    if (event.code === 1008) return problem(event.reason || "The server refused this overlay.");
    setTimeout(() => connect(Math.min(delay * 2, 10000)), delay); // the server restarted: try again
  };
}

connect(1000);
