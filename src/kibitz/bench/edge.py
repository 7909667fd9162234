"""A model server at the process edge for load benchmarks: it speaks the OpenAI chat-completions protocol (streamed
over SSE, as vLLM or SGLang do) and answers at once with a line naming what it was asked about, so a benchmark can
tell which session every line belongs to and time the server's own share of a reply.

A prompt that holds a tag `[[...]]` (a session's marker, a question's number) gets a reply starting with that tag;
each request's arrival and first chunk are timed on this process's clock.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAG = re.compile(r"\[\[([A-Za-z0-9_-]{1,40})\]\]")


class EdgeModel:
    def __init__(self, words_per_second: float = 200.0) -> None:
        self.delay = 1.0 / words_per_second
        self.lock = threading.Lock()
        self.requests = 0
        self.timings: dict[str, tuple[float, float]] = {}
        """A question's tag → (request received, first chunk sent), Unix time (the server's `at` is on this clock)."""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                received = time.time()
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                with outer.lock:
                    outer.requests += 1
                if not self.path.endswith("/chat/completions"):
                    self.send_error(404)
                    return
                text = json.dumps(body.get("messages", []))
                tags = TAG.findall(text)
                asked = [t for t in tags if t.startswith("q")]
                sessions = [t for t in tags if t.startswith("s")]
                who = sessions[-1] if sessions else "nobody"
                line = f"{asked[-1] if asked else 'r'} {who}: nice one, keep going!"
                if not body.get("stream"):
                    payload = json.dumps({"choices": [{"index": 0, "message": {"content": line}}]}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                try:
                    for i, word in enumerate(line.split(" ")[: int(body.get("max_tokens", 100))]):
                        chunk = {"choices": [{"index": 0, "delta": {"content": (" " if i else "") + word}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                        if i == 0 and asked:
                            with outer.lock:
                                outer.timings[f"{who}-{asked[-1]}"] = (received, time.time())
                        time.sleep(outer.delay)
                    self.wfile.write(b"data: [DONE]\n\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def __enter__(self) -> EdgeModel:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
