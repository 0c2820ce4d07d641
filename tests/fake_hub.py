"""A local stand-in for the Hugging Face Hub, as far as huggingface_hub's snapshot_download uses it: repo info,
the recursive file tree and `resolve` (HEAD and GET, with Range). Tests point huggingface_hub at it with
HF_ENDPOINT, so no test reaches the internet.

`FakeHub(repos)` serves {repo_id: {revision: {relpath: bytes}}}; `.requests` records (method, path) and
`.token` the last bearer token seen. A repository listed in `gated` answers 401 without the token `secret`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse

TOKEN = "hf_fake_token"


def commit_of(repo: str, revision: str) -> str:
    return hashlib.sha1(f"{repo}@{revision}".encode()).hexdigest()


def safetensors(tensors: dict[str, list[int]]) -> bytes:
    """A valid safetensors file: 8-byte header length, JSON header, F32 zeros."""
    header, offset = {}, 0
    for name, shape in tensors.items():
        size = 4
        for n in shape:
            size *= n
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    return len(text).to_bytes(8, "little") + text + bytes(offset)


def tiny_model(hidden: int = 8) -> dict[str, bytes]:
    """The files of a tiny fake model: config, tokenizer config, one safetensors shard."""
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
              "num_hidden_layers": 1, "vocab_size": 32}
    return {"config.json": json.dumps(config).encode(),
            "tokenizer_config.json": b'{"model_max_length": 4096}',
            "model.safetensors": safetensors({"embed.weight": [32, hidden], "lm_head.weight": [32, hidden]})}


class FakeHub:
    def __init__(self, repos: dict[str, dict[str, dict[str, bytes]]], gated: tuple[str, ...] = ()):
        self.repos, self.gated = repos, gated
        self.requests: list[tuple[str, str]] = []
        self.token: str | None = None
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _files(self, repo: str, revision: str) -> dict[str, bytes] | None:
        for rev, files in self.repos.get(repo, {}).items():
            if revision in (rev, commit_of(repo, rev)):
                return files
        return None

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                self._route(head=True)

            def do_GET(self):
                self._route(head=False)

            def _send(self, status, body=b"", headers=None, head=False):
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _json(self, status, doc, head=False):
                self._send(status, json.dumps(doc).encode(), {"Content-Type": "application/json"}, head)

            def _route(self, head):
                path = unquote(urlparse(self.path).path)
                hub.requests.append((self.command, path))
                auth = self.headers.get("Authorization", "")
                hub.token = auth.removeprefix("Bearer ") or None
                m = (re.fullmatch(r"/api/models/(.+?)/revision/([^/]+)", path)
                     or re.fullmatch(r"/api/models/(.+?)/tree/([^/]+)", path)
                     or re.fullmatch(r"/(.+?)/resolve/([^/]+)/(.+)", path))
                if not m:
                    return self._json(HTTPStatus.NOT_FOUND, {"error": "not found"}, head)
                repo, revision = m.group(1), m.group(2)
                if repo in hub.gated and hub.token != TOKEN:
                    return self._send(HTTPStatus.UNAUTHORIZED, b"gated", {"X-Error-Code": "GatedRepo"}, head)
                files = hub._files(repo, revision)
                if files is None:
                    return self._send(HTTPStatus.NOT_FOUND, b"", {"X-Error-Code": "RepoNotFound"}, head)
                commit = commit_of(repo, next(r for r in hub.repos[repo] if files is hub.repos[repo][r]))
                if "/revision/" in path:
                    return self._json(HTTPStatus.OK, {"id": repo, "sha": commit,
                                                      "siblings": [{"rfilename": f} for f in files]}, head)
                if "/tree/" in path:
                    return self._json(HTTPStatus.OK, [
                        {"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                        for f, b in sorted(files.items())], head)
                name = m.group(3)
                if name not in files:
                    return self._send(HTTPStatus.NOT_FOUND, b"", {"X-Error-Code": "EntryNotFound"}, head)
                self._file(files[name], commit, head)

            def _file(self, body, commit, head):
                headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                           "Accept-Ranges": "bytes"}
                rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if rng and not head:
                    start = int(rng.group(1))
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                    return self._send(HTTPStatus.PARTIAL_CONTENT, body[start:], headers)
                self._send(HTTPStatus.OK, body, headers, head)

        return Handler
