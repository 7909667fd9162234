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
let voice = null; // this session's voice: {ptt} (null: a text-only session)
let mic = null; // {stream, ctx, node, socket} while the microphone streams
let held = false; // push-to-talk: the button or the space bar is down
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
  connect(watch, $("persona").value || null, $("voice").checked ? { ptt: $("ptt").checked } : null);
});

$("stop").addEventListener("click", () => ws && ws.close(1000, "stopped"));
$("voice").addEventListener("change", () => { $("ptt").disabled = !$("voice").checked; });

function connect(watch, persona, spoken) {
  lines.clear(); // line numbers start again at 1 in each session
  stopVoice();
  voice = spoken;
  const socket = new WebSocket(kibitz.wsUrl());
  ws = kibitz.ws = socket;
  setStatus("connecting…", false);
  socket.onopen = () => {
    const hello = { type: "hello", v: 1, token, role: "player", watch };
    if (persona) hello.persona = persona;
    if (spoken) {
      hello.voice = true;
      if (spoken.ptt) hello.push_to_talk = true;
    }
    socket.send(JSON.stringify(hello));
  };
  socket.onmessage = (event) => { if (ws === socket) handle(JSON.parse(event.data)); };
  socket.onclose = (event) => {
    if (ws !== socket) return; // an earlier session's socket closing late
    setStatus(event.reason ? "stopped: " + event.reason : "not connected", false);
    stopShare();
    stopVoice();
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
    if (voice) startMic(ws);
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
    if (msg.code === "voice") { // this server or session cannot talk: the microphone stops, typing goes on
      voice = null; // a microphone still starting stops too
      stopMic();
      $("hold").hidden = true;
      voiceNote("Voice is off: type your questions instead.");
    }
  },
  pong() {},
  heard(msg) {
    // What the server heard: partials in a dim line while the player talks, then the question itself.
    if (!msg.final) {
      $("heard").textContent = "you: " + msg.text + " …";
      $("heard").hidden = !msg.text;
      return;
    }
    $("heard").hidden = true;
    if (msg.text) addRow(el("li", { class: "you", "data-heard": "1", title: "heard from your microphone" }, msg.text));
  },
  audio(msg) { kibitz.speech.play(msg); },
  hush() {
    // The player talked over the companion: its voice stops at once, and the line it was saying shows the cut.
    kibitz.speech.hush();
    const last = [...lines.values()].pop();
    if (last && !last.classList.contains("cut")) {
      last.classList.add("cut");
      last.querySelector(".text").after(el("span", { class: "cut-mark", title: "you talked over it" }, " —"));
    }
  },
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

// --- voice: the microphone streams 16 kHz 16-bit PCM as binary messages ("KBAU" + samples) -------------------
const AUDIO_MAGIC = new TextEncoder().encode("KBAU");
const MIC_BLOCK = 640; // 40 ms at 16 kHz
kibitz.micSent = 0;

function voiceNote(text) {
  $("voice-note").textContent = text;
  $("voice-note").hidden = !text;
}

async function startMic(socket) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioWorkletNode) {
    return noMic("this browser cannot record audio here (it needs https or localhost)");
  }
  let stream;
  try {
    // The browser's own echo canceller keeps the companion's voice from the speakers out of the microphone.
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
  } catch (error) {
    return noMic(error.name === "NotAllowedError" ? "the microphone was not allowed" : error.message);
  }
  if (ws !== socket || !voice) return stream.getTracks().forEach((t) => t.stop()); // the session ended meanwhile
  let ctx = null;
  try {
    let source;
    try {
      ctx = new AudioContext({ sampleRate: 16000 }); // the browser's resampler, where it can feed the mic into it
      source = ctx.createMediaStreamSource(stream);
    } catch (_) {
      if (ctx) ctx.close();
      ctx = new AudioContext(); // the device's rate: the worklet downsamples
      source = ctx.createMediaStreamSource(stream);
    }
    await ctx.audioWorklet.addModule("/static/mic-worklet.js");
    const node = new AudioWorkletNode(ctx, "kibitz-mic", { processorOptions: { rate: 16000, block: MIC_BLOCK } });
    node.port.onmessage = (event) => sendAudio(socket, event.data);
    const mute = ctx.createGain(); // a node reaching the destination is pulled in every browser; it plays nothing
    mute.gain.value = 0;
    source.connect(node).connect(mute).connect(ctx.destination);
    if (ctx.state === "suspended") await ctx.resume();
  } catch (error) {
    stream.getTracks().forEach((t) => t.stop());
    if (ctx) ctx.close();
    return noMic("the microphone could not start (" + error.message + ")");
  }
  if (ws !== socket || !voice) { stream.getTracks().forEach((t) => t.stop()); ctx.close(); return; }
  mic = { stream, ctx, socket };
  const track = stream.getAudioTracks()[0];
  if (track) track.onended = () => { stopMic(); noMic("the microphone went away"); };
  $("hold").hidden = !voice.ptt;
  voiceNote(voice.ptt ? "Voice on: hold the button or the space bar while you talk."
    : "Voice on: just talk; it listens to your microphone.");
}

function sendAudio(socket, pcm) {
  if (ws !== socket || socket.readyState !== WebSocket.OPEN) return;
  if (socket.bufferedAmount > 256000) return; // the network is behind: this bit of audio is lost
  const message = new Uint8Array(AUDIO_MAGIC.length + pcm.byteLength);
  message.set(AUDIO_MAGIC);
  message.set(new Uint8Array(pcm), AUDIO_MAGIC.length);
  socket.send(message.buffer);
  kibitz.micSent++;
}

function noMic(why) {
  const text = "No microphone: type your questions instead (" + why + ").";
  voiceNote(text);
  addRow(el("li", { class: "info" }, text));
}

function stopMic() {
  if (!mic) return;
  mic.stream.getTracks().forEach((t) => t.stop());
  mic.ctx.close().catch(() => {});
  mic = null;
}

function stopVoice() {
  stopMic();
  talk(false);
  kibitz.speech.stop();
  $("hold").hidden = true;
  $("heard").hidden = true;
  voiceNote("");
}

function talk(pressed) {
  // Push-to-talk: the server counts the audio between pressed true and false.
  if (pressed === held) return;
  held = pressed;
  $("hold").classList.toggle("held", pressed);
  if (ws && ws.readyState === WebSocket.OPEN && voice && voice.ptt) {
    ws.send(JSON.stringify({ type: "talk", pressed }));
  }
}

$("hold").addEventListener("pointerdown", () => talk(true));
for (const type of ["pointerup", "pointerleave", "pointercancel"]) $("hold").addEventListener(type, () => talk(false));

function typing() {
  const focus = document.activeElement;
  return focus && (focus.tagName === "INPUT" || focus.tagName === "TEXTAREA" || focus.tagName === "SELECT"
    || focus.isContentEditable);
}

document.addEventListener("keydown", (event) => {
  if (event.code !== "Space" || !mic || !voice || !voice.ptt || typing()) return;
  event.preventDefault(); // not a click on the focused button, nor a scroll
  if (!event.repeat) talk(true);
});
document.addEventListener("keyup", (event) => {
  if (event.code === "Space" && held) { event.preventDefault(); talk(false); }
});
window.addEventListener("blur", () => talk(false)); // a key released in another window never comes back here

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
