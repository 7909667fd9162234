"""A small local stand-in for the Hugging Face Hub's HTTP API, enough for huggingface_hub's `model_info` (with files
metadata: the sha256 of each LFS file) and `hf_hub_download` (HEAD for the commit, etag and size; GET with ranges),
so `kibitz models pull` is tested against the real client speaking the real protocol, with no network."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    commit: str
    files: dict[str, bytes]
    published: dict[str, str] = field(default_factory=dict)
    """sha256 the hub publishes per file (default: the file's real one; set another to serve a corrupt file)."""

    def sha256(self, name: str) -> str:
        return self.published.get(name) or hashlib.sha256(self.files[name]).hexdigest()


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.downloads: list[str] = []
        """Every GET of a file (its path), to tell a fresh download from a cached one."""
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(body=False)

            def do_GET(self) -> None:
                self._serve(body=True)

            def _serve(self, body: bool) -> None:
                path = unquote(urlparse(self.path).path)
                if path.startswith("/api/models/"):
                    self._info(path.removeprefix("/api/models/"))
                elif "/resolve/" in path:
                    self._file(path.lstrip("/"), body)
                else:
                    self._error(404, "EntryNotFound", "Not found")

            def _error(self, code: int, error: str, message: str) -> None:
                data = json.dumps({"error": message}).encode()
                self.send_response(code)
                self.send_header("X-Error-Code", error)
                self.send_header("X-Error-Message", message)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _repo(self, repo_id: str, revision: str) -> Repo | None:
                repo = hub.repos.get(repo_id)
                if repo is None:
                    self._error(404, "RepoNotFound", "Repository not found")
                    return None
                if revision not in ("main", repo.commit):
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                    return None
                return repo

            def _info(self, rest: str) -> None:
                repo_id, _, revision = rest.partition("/revision/")
                repo = self._repo(repo_id, revision or "main")
                if repo is None:
                    return
                siblings = [
                    {
                        "rfilename": name,
                        "size": len(data),
                        "blobId": hashlib.sha1(data).hexdigest(),
                        "lfs": {"sha256": repo.sha256(name), "size": len(data), "pointerSize": 134},
                    }
                    for name, data in repo.files.items()
                ]
                data = json.dumps(
                    {
                        "_id": "0",
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": repo.commit,
                        "private": False,
                        "siblings": siblings,
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _file(self, rest: str, body: bool) -> None:
                repo_id, _, tail = rest.partition("/resolve/")
                revision, _, name = tail.partition("/")
                repo = self._repo(repo_id, revision)
                if repo is None:
                    return
                if name not in repo.files:
                    self._error(404, "EntryNotFound", "Entry not found")
                    return
                data = repo.files[name]
                start = 0
                wanted = self.headers.get("Range")
                if wanted and wanted.startswith("bytes="):
                    start = int(wanted.removeprefix("bytes=").split("-")[0] or 0)
                part = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("ETag", f'"{repo.sha256(name)}"')
                self.send_header("X-Linked-Etag", f'"{repo.sha256(name)}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(part)))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if body:
                    hub.downloads.append(rest)
                    self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
