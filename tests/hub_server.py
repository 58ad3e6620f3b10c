"""A local stand-in for the Hugging Face Hub: the endpoints ``huggingface_hub`` 2.x calls.

``HubServer`` serves model folders (built by ``build_local_lm``) on 127.0.0.1 as hub repos,
answering exactly what ``HfApi.model_info`` and ``hf_hub_download`` ask for (read from
their source):

- ``GET /api/models/{repo}[/revision/{rev}][?blobs=true]``: the repo's commit and file list;
- ``HEAD /{repo}/resolve/{rev}/{file}``: ``X-Repo-Commit``, ``ETag`` and ``Content-Length``;
- ``GET /{repo}/resolve/{rev}/{file}``: the bytes (``Range`` honoured, for resumes).

Unknown repos and revisions get the 404 with the ``X-Error-Code`` the hub sends. Bodies can
be sent slowly (``chunk_bytes`` every ``chunk_delay_s``) or stall: after ``stall_after``
bytes of a file the server stops sending and holds the connection until it is closed.
Run a process with ``HF_ENDPOINT=server.url`` to point ``huggingface_hub`` at it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+|[^/]+)(?:/revision/(?P<rev>[^/]+))?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+|[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


class HubServer:
    def __init__(self, repos: dict[str, Path], *, chunk_bytes: int = 64 * 1024,
                 chunk_delay_s: float = 0.0, stall_after: int | None = None,
                 stall_file: str | None = None) -> None:
        self.repos = {repo: Path(folder) for repo, folder in repos.items()}
        self.commits = {repo: hashlib.sha1(repo.encode()).hexdigest() for repo in repos}
        self.chunk_bytes = chunk_bytes
        self.chunk_delay_s = chunk_delay_s
        self.stall_after = stall_after
        self.stall_file = stall_file
        self.requests: list[tuple[str, str]] = []
        self.sent = 0
        self.first_byte_at: float | None = None  # monotonic times of the first and last
        self.last_byte_at: float | None = None  # file bytes sent
        self._stop = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                return None

            def do_GET(self) -> None:
                server._handle(self, head=False)

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- requests ------------------------------------------------------------------------
    def _files(self, repo: str) -> dict[str, Path]:
        folder = self.repos[repo]
        return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
                if p.is_file()}

    def _not_found(self, h: BaseHTTPRequestHandler, code: str, head: bool) -> None:
        body = json.dumps({"error": code}).encode()
        h.send_response(404)
        h.send_header("X-Error-Code", code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _handle(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = unquote(urlparse(h.path).path)
        self.requests.append(("HEAD" if head else "GET", path))
        if match := _API.match(path):
            return self._info(h, match["repo"], match["rev"] or "main", head)
        if match := _RESOLVE.match(path):
            return self._file(h, match["repo"], match["rev"], match["file"], head)
        return self._not_found(h, "EntryNotFound", head)

    def _revision_ok(self, repo: str, rev: str) -> bool:
        return rev in ("main", self.commits[repo])

    def _info(self, h: BaseHTTPRequestHandler, repo: str, rev: str, head: bool) -> None:
        if repo not in self.repos:
            return self._not_found(h, "RepoNotFound", head)
        if not self._revision_ok(repo, rev):
            return self._not_found(h, "RevisionNotFound", head)
        siblings = [{"rfilename": name, "size": p.stat().st_size,
                     "blobId": hashlib.sha1(p.read_bytes()).hexdigest()}
                    for name, p in self._files(repo).items()]
        body = json.dumps({"id": repo, "modelId": repo, "sha": self.commits[repo],
                           "private": False, "siblings": siblings}).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _file(self, h: BaseHTTPRequestHandler, repo: str, rev: str, name: str,
              head: bool) -> None:
        if repo not in self.repos:
            return self._not_found(h, "RepoNotFound", head)
        if not self._revision_ok(repo, rev):
            return self._not_found(h, "RevisionNotFound", head)
        file = self._files(repo).get(name)
        if file is None:
            return self._not_found(h, "EntryNotFound", head)
        data = file.read_bytes()
        start = 0
        ranged = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", "") or "")
        if ranged and not head:
            start = min(int(ranged.group(1)), len(data))
        h.send_response(206 if start else 200)
        h.send_header("X-Repo-Commit", self.commits[repo])
        h.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
        h.send_header("Content-Length", str(len(data) - start))
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Accept-Ranges", "bytes")
        h.end_headers()
        if head:
            return
        sent = 0
        body = data[start:]
        for offset in range(0, len(body), self.chunk_bytes):
            if (self.stall_after is not None and sent >= self.stall_after
                    and (self.stall_file is None or self.stall_file == name)):
                # Stop sending and hold the connection open, as a stuck link does.
                while not self._stop.wait(0.1):
                    pass
                return
            chunk = body[offset:offset + self.chunk_bytes]
            try:
                h.wfile.write(chunk)
                h.wfile.flush()
            except OSError:
                return
            sent += len(chunk)
            self.sent += len(chunk)
            self.last_byte_at = time.monotonic()
            if self.first_byte_at is None:
                self.first_byte_at = self.last_byte_at
            if self.chunk_delay_s:
                time.sleep(self.chunk_delay_s)
