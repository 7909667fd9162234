"""A small local server speaking the OpenAI chat-completions protocol (SSE streaming), for tests.

It stands in for a remote model server at the process edge only: kibitz talks to it over real HTTP.
Its reply is derived from the request, so tests can check what kibitz sent and what it did with the answer.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeOpenAI:
    def __init__(self, mode: str = "ok", reply: str = "Whoa, nice moves out there! Keep going.") -> None:
        self.mode = mode
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                outer.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                if outer.mode == "error":
                    payload = b'{"error": {"message": "model not found"}}'
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
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
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def reply_for(self, body: dict[str, Any]) -> str:
        user = body["messages"][-1]["content"]
        if "asks you" in user:
            return "You have " + ("lives to spare. " if "lives left" in user else "no idea. ") + self.reply
        return self.reply

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
