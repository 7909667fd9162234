// The companion app: pick what to watch, read the companion's lines as they stream, ask, rate, and look after
// your profile and memories. Plain JavaScript, no build step; the protocol is docs/protocol.schema.json.
"use strict";

const { el } = kibitz;
const TOKEN_KEY = "kibitz.token";
const MAX_WIDTH = 960; // shared frames are scaled down to this width before they are sent
const $ = (id) => document.getElementById(id);

let token = kibitz.tokenFromHash(TOKEN_KEY);
let ws = null;
let share = null; // {stream, timer}
const lines = new Map(); // line number -> its list item

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${token}` };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  return response;
}

function setStatus(text, on) {
  $("status").textContent = text;
  $("status").className = "status " + (on ? "on" : "off");
}

// --- signing in ------------------------------------------------------------------------------------------
async function signIn() {
  if (!token) return showLogin("");
  let me;
  try {
    me = await (await api("/api/v1/me")).json();
    if (me.scope !== "player") throw new Error("This is an overlay token; sign in with the player token.");
  } catch (error) {
    localStorage.removeItem(TOKEN_KEY);
    token = null;
    return showLogin(error.message);
  }
  $("login").hidden = true;
  $("main").hidden = false;
  $("who").textContent = me.user;
  await Promise.all([loadChoices(), loadProfile(), loadMemories()]);
  kibitz.readyAt = performance.now(); // from navigation start: `kibitz bench serve` reads it
  document.body.dataset.ready = "1";
}

function showLogin(message) {
  $("main").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message;
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem(TOKEN_KEY, token);
  signIn();
});

async function loadChoices() {
  const choices = await (await api("/api/v1/choices")).json();
  $("game").replaceChildren(...choices.games.map((g) => el("option", { value: g }, g)));
  $("persona").replaceChildren(el("option", { value: "" }, "my profile's"),
    ...choices.personas.map((name) => el("option", { value: name }, name)));
  kibitz.personas = choices.personas;
}

// --- the session -----------------------------------------------------------------------------------------
$("watch-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("watch-error").textContent = "";
  const kind = new FormData($("watch-form")).get("kind");
  const watch = { kind };
  if (kind === "game") watch.game = $("game").value;
  if (kind === "screen") {
    watch.fps = Number($("fps").value);
    try {
      const stream = await navigator.mediaDevices.getDisplayMedia({ video: { frameRate: watch.fps }, audio: false });
      $("preview").srcObject = stream;
      $("preview").hidden = false;
      await $("preview").play();
      share = { stream, timer: null };
    } catch (error) {
      $("watch-error").textContent = "Screen sharing was not allowed or is not available: " + error.message;
      return;
    }
  }
  if (kind === "context") watch.title = "my game";
  connect(watch, $("persona").value || null);
});

$("stop").addEventListener("click", () => ws && ws.close(1000, "stopped"));

function connect(watch, persona) {
  lines.clear(); // line numbers start again at 1 in each session
  const socket = new WebSocket(kibitz.wsUrl());
  ws = kibitz.ws = socket;
  setStatus("connecting…", false);
  socket.onopen = () => {
    const hello = { type: "hello", v: 1, token, role: "player", watch };
    if (persona) hello.persona = persona;
    socket.send(JSON.stringify(hello));
  };
  socket.onmessage = (event) => { if (ws === socket) handle(JSON.parse(event.data)); };
  socket.onclose = (event) => {
    if (ws !== socket) return; // an earlier session's socket closing late
    setStatus(event.reason ? "stopped: " + event.reason : "not connected", false);
    stopShare();
    for (const id of ["question", "ask", "stop"]) $(id).disabled = true;
    $("start").disabled = false;
    ws = null;
  };
  $("start").disabled = true;
  $("stop").disabled = false;
}

const handlers = {
  welcome(msg) {
    setStatus("watching " + msg.watching, true);
    $("persona-name").textContent = msg.persona ? "· " + msg.persona : "";
    for (const id of ["question", "ask"]) $(id).disabled = false;
    if (share) kibitz.shareFrom($("preview"), Number($("fps").value));
  },
  event(msg) {
    addRow(el("li", { class: "event" }, el("span", { class: "t" }, msg.t.toFixed(1) + "s"), " ", msg.summary));
  },
  token(msg) {
    const item = lineItem(msg.line);
    item.querySelector(".text").append(msg.text);
    item.classList.add("streaming");
  },
  line(msg) {
    const item = lineItem(msg.line);
    item.querySelector(".text").textContent = msg.text;
    item.classList.remove("streaming");
    item.dataset.done = "1";
    if (msg.trigger !== "command") item.append(thumbs(msg.line));
    if (msg.first_token_s != null) item.title = `first word after ${msg.first_token_s.toFixed(2)} s`;
    refreshMemoriesSoon();
  },
  line_error(msg) {
    const item = lineItem(msg.line);
    item.classList.remove("streaming");
    item.append(el("span", { class: "error" }, " " + msg.message));
  },
  state: showState,
  info(msg) { addRow(el("li", { class: "info" }, msg.message)); },
  error(msg) {
    $("watch-error").textContent = msg.message;
    addRow(el("li", { class: "error" }, msg.message));
  },
  pong() {},
};

function handle(msg) {
  const handler = handlers[msg.type];
  if (handler) handler(msg);
}

function addRow(item) {
  const list = $("lines");
  list.append(item);
  while (list.children.length > 200) list.firstChild.remove();
  list.scrollTop = list.scrollHeight;
}

function lineItem(n) {
  let item = lines.get(n);
  if (!item) {
    item = el("li", { class: "line", "data-line": n }, el("span", { class: "text" }));
    lines.set(n, item);
    addRow(item);
  }
  return item;
}

function thumbs(n) {
  const socket = ws; // the session this line belongs to: a rating never reaches a later session
  const rate = (rating) => (event) => {
    if (!ws || ws !== socket) return;
    ws.send(JSON.stringify({ type: "rate", line: n, rating }));
    const button = event.currentTarget;
    button.parentElement.querySelectorAll("button").forEach((b) => (b.disabled = true));
    button.classList.add("chosen");
    setTimeout(loadProfile, 800); // a thumbs-down may have changed how it talks
  };
  return el("span", { class: "thumbs" },
    el("button", { type: "button", class: "up", title: "good line", "aria-label": "good line", onclick: rate("up") },
      thumb()),
    el("button", { type: "button", class: "down", title: "bad line", "aria-label": "bad line",
      onclick: rate("down") }, thumb()));
}

function thumb() {
  // A thumb drawn in SVG (Material Icons' thumb_up, Apache-2.0): no emoji font is needed.
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06L14.17 " +
    "1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05c.09-.23.14-.47.14-.73v-2z");
  svg.append(path);
  return svg;
}

$("ask-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("question").value.trim();
  if (!text || !ws) return;
  ws.send(JSON.stringify({ type: "question", text }));
  addRow(el("li", { class: "you" }, text));
  $("question").value = "";
});

function showState(msg) {
  $("st-game").textContent = msg.game ? `${msg.game} (${Math.round(msg.game_confidence * 100)} %)` : "–";
  $("st-scene").textContent = msg.scene;
  $("st-frames").textContent = msg.frames + (msg.dropped_frames ? ` (${msg.dropped_frames} dropped)` : "");
  $("st-fields").replaceChildren(...Object.entries(msg.fields).map(([k, v]) => el("tr", {}, el("th", {}, k),
    el("td", {}, v))));
  $("st-recent").replaceChildren(...msg.recent.map((s) => el("li", {}, s)));
  $("st-decisions").replaceChildren(...msg.decisions.map((s) => el("li", {}, s)));
}

// --- sharing a screen: frames drawn into a canvas, scaled down, sent as JPEG over the WebSocket --------------
kibitz.shareFrom = function (source, fps) {
  // `source`: a <video> (a shared screen, or any clip), a <canvas> or an <img>; the same upload path for all.
  stopTimer();
  const canvas = document.createElement("canvas");
  kibitz.sent = 0;
  kibitz.skipped = 0;
  const timer = setInterval(() => {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > 1000000) { kibitz.skipped++; return; } // the network is behind: skip this one
    const w = source.videoWidth || source.naturalWidth || source.width;
    const h = source.videoHeight || source.naturalHeight || source.height;
    if (!w || !h) return;
    const scale = Math.min(1, MAX_WIDTH / w);
    canvas.width = Math.round(w * scale);
    canvas.height = Math.round(h * scale);
    canvas.getContext("2d").drawImage(source, 0, 0, canvas.width, canvas.height);
    canvas.toBlob((blob) => {
      if (blob && ws && ws.readyState === WebSocket.OPEN) { ws.send(blob); kibitz.sent++; }
    }, "image/jpeg", 0.8);
  }, 1000 / fps);
  share = { ...(share || {}), timer };
};

function stopTimer() {
  if (share && share.timer) clearInterval(share.timer);
}

function stopShare() {
  stopTimer();
  if (share && share.stream) share.stream.getTracks().forEach((t) => t.stop());
  share = null;
  $("preview").hidden = true;
}

// --- profile -----------------------------------------------------------------------------------------------
async function loadProfile() {
  const profile = await (await api("/api/v1/profile")).json();
  const form = $("profile-form");
  const rows = Object.entries(profile.allowed).map(([key, allowed]) => {
    const current = profile.settings[key] || "";
    let input;
    const options = key === "persona" ? kibitz.personas || [] : allowed.includes("|") ? allowed.split("|") : null;
    if (options) {
      input = el("select", { name: key }, el("option", { value: "" }, "default"),
        ...options.map((o) => el("option", { value: o.trim() }, o.trim())));
      input.value = current;
    } else {
      input = el("input", { name: key, value: current, placeholder: "default", maxlength: 40 });
    }
    return el("label", { title: allowed }, el("span", {}, key), input);
  });
  form.replaceChildren(...rows, el("button", { type: "submit" }, "Save"));
}

$("profile-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = Object.fromEntries(new FormData($("profile-form")).entries());
  try {
    await api("/api/v1/profile", { method: "PUT", body: JSON.stringify(body) });
    $("profile-note").textContent = "Saved: it talks this way from its next line.";
    await loadProfile();
  } catch (error) {
    $("profile-note").textContent = error.message;
  }
});

// --- memories ----------------------------------------------------------------------------------------------
async function loadMemories(query) {
  const path = "/api/v1/memories" + (query ? "?q=" + encodeURIComponent(query) : "");
  const memories = await (await api(path)).json();
  $("memories").replaceChildren(...memories.map((m) => el("li", {},
    el("span", { class: "dim" }, `${m.game || "general"} · ${m.topic} `), m.text, " ",
    el("button", { type: "button", class: "small danger", onclick: () => forget(m.id) }, "forget"))));
  if (!memories.length) $("memories").append(el("li", { class: "dim" }, query ? "nothing matches" : "nothing yet"));
}

let memoryTimer = null;
function refreshMemoriesSoon() {
  // What the session writes (events, facts you told it) shows up here a moment later.
  clearTimeout(memoryTimer);
  memoryTimer = setTimeout(() => loadMemories($("memory-q").value.trim()).catch(() => {}), 3000);
}

async function forget(id) {
  await api(`/api/v1/memories/${id}`, { method: "DELETE" });
  await loadMemories($("memory-q").value.trim());
}

$("memory-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadMemories($("memory-q").value.trim());
});

$("export").addEventListener("click", async () => {
  const blob = await (await api("/api/v1/export")).blob();
  const link = el("a", { href: URL.createObjectURL(blob), download: "kibitz-memory.json" });
  link.click();
  URL.revokeObjectURL(link.href);
});

$("forget-all").addEventListener("click", async () => {
  if (!confirm("Forget everything kibitz remembers about you, and your profile?")) return;
  await api("/api/v1/memories?all=true", { method: "DELETE" });
  await Promise.all([loadMemories(), loadProfile()]);
});

signIn();
