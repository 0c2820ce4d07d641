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
    # vLLM's server (uvicorn) listens with a backlog of 2048; socketserver's default of 5 resets connections when
    # 32 clients connect at once (the gateway benchmark's burst).
    request_queue_size = 2048

    def get_request(self):
        conn, addr = super().get_request()
        # Without this every keep-alive response waits ~40 ms on Nagle + delayed ACK.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


# vLLM's histogram buckets (vllm/v1/metrics/loggers.py), in seconds.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
               960.0, 1920.0, 7680.0)


class Histogram:
    """A Prometheus histogram: cumulative bucket counts, sum and count."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets, self.counts, self.sum, self.count = buckets, [0] * len(buckets), 0.0, 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.sum += value
        self.count += 1

    def samples(self, name: str, label: str) -> list[str]:
        out = [f'{name}_bucket{{{label},le="{b}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        return out + [f'{name}_bucket{{{label},le="+Inf"}} {self.count}', f"{name}_sum{{{label}}} {self.sum}",
                      f"{name}_count{{{label}}} {self.count}"]


class State:
    """What the handler needs: parsed args, identity and what /metrics reports."""

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
        self.running = 0
        self.ttft = Histogram(TTFT_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)

    def count(self, prompt: int, generated: int) -> None:
        with self.lock:
            self.success += 1
            self.prompt_tokens += prompt
            self.generation_tokens += generated

    def started(self) -> None:
        with self.lock:
            self.running += 1

    def first_token(self, seconds: float) -> None:
        with self.lock:
            self.ttft.observe(seconds)

    def finished(self, seconds: float) -> None:
        with self.lock:
            self.running -= 1
            self.e2e.observe(seconds)


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
        start, done = time.monotonic(), []

        def finished() -> None:  # once: before the answer's last bytes go out (a client then sees it done), or on error
            if not done:
                done.append(True)
                self.state.finished(time.monotonic() - start)

        self.state.started()
        try:
            self._generate(chat, model, body, start, finished)
        finally:
            finished()

    def _generate(self, chat: bool, model: str, body: dict, start: float, finished) -> None:
        prompt = _prompt_text(body)
        text = self._answer(model, prompt)
        usage = {"prompt_tokens": _words(prompt), "completion_tokens": _words(text)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        self.state.count(usage["prompt_tokens"], usage["completion_tokens"])
        rid = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        base = {"id": rid, "created": int(time.time()), "model": model}
        self.state.first_token(time.monotonic() - start)  # the whole answer is ready at once
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(chat, base, text, usage if include_usage else None, finished)
            return
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text},
                      "logprobs": None, "finish_reason": "stop"}
            obj = {**base, "object": "chat.completion", "choices": [choice], "usage": usage}
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": "stop"}
            obj = {**base, "object": "text_completion", "choices": [choice], "usage": usage}
        finished()
        self._json(HTTPStatus.OK, obj)

    def _stream(self, chat: bool, base: dict, text: str, usage: dict | None, finished) -> None:
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
        finished()
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")
        self.wfile.flush()

    def _event(self, obj: dict) -> None:
        self._chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def _metrics(self) -> str:
        """vLLM's metric families (v1 engine names; label model_name, engine), each family's samples together."""
        s = self.state
        labels = [f'model_name="{name}",engine="0"' for name in s.names]
        with s.lock:
            families = [
                ("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
                 [f"{{{lb}}} {s.running}" for lb in labels]),
                ("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                 [f"{{{lb}}} 0" for lb in labels]),
                ("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                 [f"{{{lb}}} 0.0" for lb in labels]),
                ("vllm:request_success_total", "counter", "Count of successfully processed requests.",
                 [f'{{finished_reason="stop",{lb}}} {s.success}' for lb in labels]),
                ("vllm:prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                 [f"{{{lb}}} {s.prompt_tokens}" for lb in labels]),
                ("vllm:generation_tokens_total", "counter", "Number of generation tokens processed.",
                 [f"{{{lb}}} {s.generation_tokens}" for lb in labels]),
            ]
            histograms = [
                ("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", s.ttft),
                ("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", s.e2e),
            ]
            lines = []
            for name, kind, help_text, samples in families:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"] + [name + x for x in samples]
            for name, help_text, histogram in histograms:
                lines += [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
                for lb in labels:
                    lines += histogram.samples(name, lb)
        return "\n".join(lines) + "\n"


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
