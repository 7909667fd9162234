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
