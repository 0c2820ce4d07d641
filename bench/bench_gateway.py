"""Latency and throughput of chat completions at several OpenAI-compatible endpoints, e.g. a vLLM instance
straight and the same model through LiteLLM (what the gateway adds), or LiteLLM straight and through the HTTPS
entry point (what Caddy adds).

Standard library only, so it runs on a gateway host itself (nothing to install there); keys are read from files
on that host (never on a command line):
    python3 bench_gateway.py --model qwen-0.5b \
        http://10.213.47.10:8001=/opt/solv/secrets/vllm_api_key \
        http://172.18.0.3:4000=/opt/solv/secrets/litellm_master_key
Per endpoint: -n sequential requests on one kept-alive connection (after 5 to warm up), then --requests spread
over --clients concurrent connections. Prints one JSON object (bench/run.py --lab runs it over SSH).
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import threading
import time
import urllib.parse


def _connection(base: str, ca: str | None) -> http.client.HTTPConnection:
    url = urllib.parse.urlsplit(base)
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=60,
                                           context=ssl.create_default_context(cafile=ca))
    return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=60)


def _request(conn: http.client.HTTPConnection, body: str, headers: dict) -> int:
    conn.request("POST", "/v1/chat/completions", body, headers)
    response = conn.getresponse()
    response.read()
    return response.status


def sequential(base: str, body: str, headers: dict, ca: str | None, n: int) -> list[float]:
    """Milliseconds per request, one after the other on one connection."""
    conn = _connection(base, ca)
    times = []
    for i in range(n + 5):  # the first five warm the connection and the proxy up
        start = time.perf_counter()
        status = _request(conn, body, headers)
        if status != 200:
            raise SystemExit(f"{base}: status {status}")
        if i >= 5:
            times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times


def concurrent(base: str, body: str, headers: dict, ca: str | None, clients: int, requests: int) -> dict:
    """`requests` requests over `clients` kept-alive connections at once: rate and errors."""
    left = [requests]
    lock = threading.Lock()
    errors = [0]

    def client() -> None:
        conn = _connection(base, ca)
        while True:
            with lock:
                if left[0] == 0:
                    break
                left[0] -= 1
            try:
                ok = _request(conn, body, headers) == 200
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = _connection(base, ca)
            if not ok:
                with lock:
                    errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    return {"clients": clients, "requests": requests, "seconds": round(seconds, 3),
            "rps": round(requests / seconds, 1), "errors": errors[0]}


def percentile(sorted_ms: list[float], p: float) -> float:
    return sorted_ms[min(len(sorted_ms) - 1, int(len(sorted_ms) * p))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoints", nargs="+", metavar="BASE_URL=KEY_FILE")
    parser.add_argument("--model", required=True)
    parser.add_argument("--ca", help="CA certificate for https endpoints")
    parser.add_argument("-n", type=int, default=300, help="sequential requests per endpoint")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=640, help="requests over the concurrent clients")
    args = parser.parse_args()
    body = json.dumps({"model": args.model, "max_tokens": 8, "messages": [{"role": "user", "content": "bench"}]})
    out = []
    for endpoint in args.endpoints:
        base, _, key_file = endpoint.partition("=")
        with open(key_file) as fh:
            headers = {"Authorization": f"Bearer {fh.read().strip()}", "Content-Type": "application/json"}
        ms = sequential(base, body, headers, args.ca, args.n)
        s = sorted(ms)
        out.append({"url": base, "samples_ms": [round(t, 2) for t in ms], "p50_ms": round(statistics.median(s), 2),
                    "p95_ms": round(percentile(s, 0.95), 2),
                    "concurrent": concurrent(base, body, headers, args.ca, args.clients, args.requests)})
    print(json.dumps({"model": args.model, "endpoints": out}))


if __name__ == "__main__":
    main()
