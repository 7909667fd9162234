"""A small local server speaking the OpenAI chat-completions protocol, for tests.

It stands in for a remote model server at the process edge only: kibitz talks to it over real HTTP.
Its reply is derived from the request, so tests can check what kibitz sent and what it did with the answer.

Requests with "stream": true are answered over SSE (the text LLM path); others get one JSON chat completion (the
VLM path), whose content by default is a scene report describing what the server found in the request: the
decoded size of the JPEG image part, the lines of the <screen_text> block, and whether response_format was sent.

Modes: "ok" (default); "error" (HTTP 404); "malformed" (a broken SSE chunk); "http500" (HTTP 500); "slow" (sleeps
`delay` seconds, then answers as "ok"); "no_schema" (HTTP 400 for any request with response_format, "ok" without);
"prose" (a non-streamed reply in prose, no JSON); "bad_report" (a JSON object missing "scene" with wrongly typed
values). Setting `content` makes non-streamed replies return that text verbatim.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

PROSE = "I can see a small plumber running to the right past some bricks. Looks like a fun level!"
BAD_REPORT = {"game": ["not", "a", "string"], "objects": "lots of things", "confidence": "pretty sure"}


class FakeOpenAI:
    def __init__(
        self, mode: str = "ok", reply: str = "Whoa, nice moves out there! Keep going.", delay: float = 2.0
    ) -> None:
        self.mode = mode
        self.reply = reply
        self.delay = delay
        self.content: str | None = None
        self.reply_fn: Any = None
        """Optional (request body) -> reply text for streamed requests, overriding `reply`."""
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.images: list[tuple[str, tuple[int, int]]] = []
        """(format, (width, height)) of every image part the server decoded, in order."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def send_json(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the slow mode)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(body)
                outer.headers.append(dict(self.headers))
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                if outer.mode == "error":
                    self.send_json(404, {"error": {"message": "model not found"}})
                    return
                if outer.mode == "http500":
                    self.send_json(500, {"error": {"message": "CUDA out of memory"}})
                    return
                if outer.mode == "no_schema" and "response_format" in body:
                    message = "response_format of type json_schema is not supported by this server"
                    self.send_json(400, {"error": {"message": message, "type": "BadRequestError"}})
                    return
                if outer.mode == "slow":
                    time.sleep(outer.delay)
                if not body.get("stream", False):
                    content = outer.content_for(body)
                    choice = {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    self.send_json(200, {"object": "chat.completion", "model": body.get("model"), "choices": [choice]})
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if outer.mode == "malformed":
                    self.wfile.write(b"data: {not json\n\n")
                    return
                text = outer.reply_for(body)
                try:
                    for word in text.split(" ")[: int(body.get("max_tokens", 100))]:
                        chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stops reading once it has the sentences it wants, as real clients do

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def reply_for(self, body: dict[str, Any]) -> str:
        if self.reply_fn is not None:
            return str(self.reply_fn(body))
        user = body["messages"][-1]["content"]
        if "asks you" in user:
            return "You have " + ("lives to spare. " if "lives left" in user else "no idea. ") + self.reply
        return self.reply

    def content_for(self, body: dict[str, Any]) -> str:
        """The message content of a non-streamed reply."""
        if self.content is not None:
            return self.content
        if self.mode == "prose":
            return PROSE
        if self.mode == "bad_report":
            return json.dumps(BAD_REPORT)
        return json.dumps(self.scene_report_for(body))

    def scene_report_for(self, body: dict[str, Any]) -> dict[str, Any]:
        """A scene report saying what the request held: the decoded image sizes and the screen text lines."""
        parts = body["messages"][-1]["content"]
        parts = parts if isinstance(parts, list) else [{"type": "text", "text": parts}]
        objects, text = [], []
        for part in parts:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"]
                header, _, data = url.partition(",")
                try:
                    with Image.open(io.BytesIO(base64.b64decode(data, validate=True))) as img:
                        img.load()
                        self.images.append((str(img.format), img.size))
                        objects.append(f"{header} {img.format} {img.size[0]}x{img.size[1]}")
                except Exception as exc:
                    objects.append(f"undecodable image ({exc.__class__.__name__})")
            elif part.get("type") == "text":
                match = re.search(r"<screen_text>\n(.*)\n</screen_text>", part["text"], re.DOTALL)
                if match:
                    text = match.group(1).splitlines()
        return {
            "game": "Fake Quest",
            "scene": "gameplay",
            "objects": objects,
            "threats": [],
            "suggestion": "constrained" if "response_format" in body else "unconstrained",
            "text": text,
            "confidence": 0.9,
        }

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
