"""The HTTP side of the vLLM stand-in: vLLM's OpenAI-compatible routes, deterministic answers.

Answers name the served model, the host identity (env SOLV_STANDIN_IDENTITY, else the hostname),
the port and the stand-in's version (env SOLV_STANDIN_VERSION, set by the image), so tests can tell
which replica and which release answered: "[<model>@<identity>:<port> v<version>] echo: <prompt>". `--api-key` guards /v1/* only, as vLLM.
With `--runner pooling` it is an embedding model instead, as vLLM: /v1/embeddings answers, the completion routes
do not exist. Its vectors hash each word into one of EMBEDDING_DIM signed dimensions (then unit length), so texts
sharing words are near each other and a retrieval test knows which chunk a question finds.
Env SOLV_STANDIN_STARTUP_DELAY (seconds) delays listening, like a model load.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import math
import re
import struct
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("vllm_standin")

EMBEDDING_DIM = 256
_WORD = re.compile(r"\w+")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        conn, addr = super().get_request()
        # Without this every keep-alive response waits ~40 ms on Nagle + delayed ACK.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class State:
    """What the handler needs: parsed args, identity and counters for /metrics."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.names = list(args.served_model_name)
        self.identity = os.environ.get("SOLV_STANDIN_IDENTITY") or socket.gethostname()
        self.version = os.environ.get("SOLV_STANDIN_VERSION", "dev")
        self.created = int(time.time())
        self.lock = threading.Lock()
        self.success = 0
        self.prompt_tokens = 0
        self.generation_tokens = 0

    def count(self, prompt: int, generated: int) -> None:
        with self.lock:
            self.success += 1
            self.prompt_tokens += prompt
            self.generation_tokens += generated


def _words(text: str) -> int:
    return max(1, len(text.split()))


def embed(text: str) -> list[float]:
    """The stand-in's embedding: signed word hashing, unit length (all zeros for a text without words)."""
    vector = [0.0] * EMBEDDING_DIM
    for word in _WORD.findall(text.lower()):
        digest = hashlib.sha256(word.encode()).digest()
        index = int.from_bytes(digest[:4], "big") % EMBEDDING_DIM
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def _prompt_text(body: dict) -> str:
    if "messages" in body:
        users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
        content = users[-1].get("content", "") if users else ""
        if isinstance(content, list):  # OpenAI content parts
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        return str(content)
    prompt = body.get("prompt", "")
    return " ".join(map(str, prompt)) if isinstance(prompt, list) else str(prompt)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vllm-standin"
    state: State  # set by serve()

    def log_message(self, fmt: str, *args) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    # --- responses ---
    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: object) -> None:
        self._send(status, json.dumps(obj).encode())

    def _error(self, status: HTTPStatus, message: str, kind: str) -> None:
        self._json(status, {"error": {"message": message, "type": kind, "param": None, "code": int(status)}})

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    # --- routing ---
    def _authorized(self) -> bool:
        keys = self.state.args.api_key
        if not keys or not self.path.startswith("/v1"):
            return True
        given = self.headers.get("Authorization", "")
        return any(hmac.compare_digest(given, f"Bearer {k}") for k in keys)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self._authorized():
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "Unauthorized"})
        elif path in ("/health", "/ping"):
            self._send(HTTPStatus.OK, b"", "text/plain")
        elif path == "/version":
            self._json(HTTPStatus.OK, {"version": self.state.version})
        elif path == "/metrics":
            self._send(HTTPStatus.OK, self._metrics().encode(), "text/plain; version=0.0.4")
        elif path == "/v1/models":
            self._json(HTTPStatus.OK, {"object": "list", "data": [
                {"id": n, "object": "model", "created": self.state.created, "owned_by": "vllm",
                 "root": self.state.args.model, "parent": None,
                 "max_model_len": self.state.args.max_model_len or 4096}
                for n in self.state.names]})
        else:
            self._json(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        if not self._authorized():
            self._json(HTTPStatus.UNAUTHORIZED, {"error": "Unauthorized"})
            return
        routes = ("/v1/embeddings",) if self.state.args.pooling else ("/v1/chat/completions", "/v1/completions")
        if path not in routes:
            self._json(HTTPStatus.NOT_FOUND, {"detail": "Not Found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
        except ValueError as err:
            self._error(HTTPStatus.BAD_REQUEST, f"invalid JSON body: {err}", "BadRequestError")
            return
        model = body.get("model") or self.state.names[0]
        if model not in self.state.names:
            self._error(HTTPStatus.NOT_FOUND, f"The model `{model}` does not exist.", "NotFoundError")
            return
        if path == "/v1/embeddings":
            self._embeddings(model, body)
        else:
            self._complete(path.endswith("chat/completions"), model, body)

    # --- embeddings ---
    def _embeddings(self, model: str, body: dict) -> None:
        given = body.get("input")
        inputs = [given] if isinstance(given, str) else given
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            self._error(HTTPStatus.BAD_REQUEST, "input must be a string or a non-empty list of strings",
                        "BadRequestError")
            return
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            self._error(HTTPStatus.BAD_REQUEST, f"unsupported encoding_format {fmt!r}", "BadRequestError")
            return
        data = []
        for i, text in enumerate(inputs):
            vector = embed(text)
            value = (base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if fmt == "base64"
                     else vector)
            data.append({"index": i, "object": "embedding", "embedding": value})
        tokens = sum(_words(t) for t in inputs)
        self.state.count(tokens, 0)
        self._json(HTTPStatus.OK, {"id": "embd-" + uuid.uuid4().hex, "object": "list", "created": int(time.time()),
                                   "model": model, "data": data,
                                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # --- completions ---
    def _answer(self, model: str, prompt: str) -> str:
        port = self.state.args.port
        return f"[{model}@{self.state.identity}:{port} v{self.state.version}] echo: {prompt}"

    def _complete(self, chat: bool, model: str, body: dict) -> None:
        prompt = _prompt_text(body)
        text = self._answer(model, prompt)
        usage = {"prompt_tokens": _words(prompt), "completion_tokens": _words(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.state.count(usage["prompt_tokens"], usage["completion_tokens"])
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        base = {"id": rid, "created": int(time.time()), "model": model}
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(chat, base, text, usage if include_usage else None)
            return
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "logprobs": None, "finish_reason": "stop"}
            obj = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            obj = {**base, "object": "text_completion", "choices": [choice], "usage": usage}
        self._json(HTTPStatus.OK, obj)

    def _stream(self, chat: bool, base: dict, text: str, usage: dict | None) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        kind = "chat.completion.chunk" if chat else "text_completion"
        pieces = [w + " " for w in text.split(" ")]
        pieces[-1] = pieces[-1].rstrip(" ")
        if chat:
            pieces.insert(0, None)  # the first chunk carries the role
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            if chat:
                delta = {"role": "assistant", "content": ""} if piece is None else {"content": piece}
                choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}
            else:
                choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": "stop" if last else None}
            self._event({**base, "object": kind, "choices": [choice]})
        if usage is not None:
            self._event({**base, "object": kind, "choices": [], "usage": usage})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")
        self.wfile.flush()

    def _event(self, obj: dict) -> None:
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _metrics(self) -> str:
        s = self.state
        lines = []
        for name in s.names:
            label = f'model_name="{name}"'
            lines += [
                f"vllm:num_requests_running{{{label}}} 0",
                f"vllm:num_requests_waiting{{{label}}} 0",
                f"vllm:gpu_cache_usage_perc{{{label}}} 0.0",
                f'vllm:request_success_total{{finished_reason="stop",{label}}} {s.success}',
                f"vllm:prompt_tokens_total{{{label}}} {s.prompt_tokens}",
                f"vllm:generation_tokens_total{{{label}}} {s.generation_tokens}",
            ]
        header = [
            "# HELP vllm:request_success_total Count of successfully processed requests.",
            "# TYPE vllm:request_success_total counter",
        ]
        return "\n".join(header + lines) + "\n"


def serve(args: argparse.Namespace) -> int:
    delay = float(os.environ.get("SOLV_STANDIN_STARTUP_DELAY") or 0)
    if delay > 0:
        log.info("simulating model load for %.1fs", delay)
        time.sleep(delay)
    handler = type("BoundHandler", (Handler,), {"state": State(args)})
    server = Server((args.host, args.port), handler)
    log.info("model=%s served as %s on http://%s:%d (runner=%s tp=%d pp=%d gpu_mem=%.2f max_len=%s quant=%s)",
             args.model, ",".join(args.served_model_name), args.host, args.port, "pooling" if args.pooling else "generate",
             args.tensor_parallel_size, args.pipeline_parallel_size, args.gpu_memory_utilization,
             args.max_model_len, args.quantization)
    log.info("Application startup complete.")
    # As PID 1 in a container SIGTERM is ignored unless handled: `docker stop` would wait 10 s.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
