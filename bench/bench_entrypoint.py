"""What the HTTPS entry point (Caddy) adds to a request: the same chat completion through
https://<gateway>/v1 and straight to LiteLLM's container, sequential, on kept-alive connections.

Standard library only, so it runs on a gateway host itself (no client installed there):
    python3 bench_entrypoint.py --key KEY --model M --ca /opt/solv/secrets/caddy_ca_certificate \
        https://10.213.61.10 http://<solv-litellm's address>:4000
Target (bench/RESULTS.md): the entry point adds under 5 ms p50 on a kept-alive connection.
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import statistics
import time
import urllib.parse


def run(base: str, key: str, model: str, ca: str | None, n: int) -> list[float]:
    url = urllib.parse.urlsplit(base)
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname, url.port or 443, context=ssl.create_default_context(cafile=ca))
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    body = json.dumps({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "bench"}]})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    times = []
    for i in range(n + 5):  # the first five warm the connection and the proxy up
        start = time.perf_counter()
        conn.request("POST", "/v1/chat/completions", body, headers)
        response = conn.getresponse()
        response.read()
        if response.status != 200:
            raise SystemExit(f"{base}: status {response.status}")
        if i >= 5:
            times.append((time.perf_counter() - start) * 1000)
    conn.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("urls", nargs="+")
    parser.add_argument("--key", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--ca")
    parser.add_argument("-n", type=int, default=200)
    args = parser.parse_args()
    for base in args.urls:
        t = sorted(run(base, args.key, args.model, args.ca, args.n))
        print(f"{base}: n={len(t)} p50 {statistics.median(t):.1f} ms  p95 {t[int(len(t) * 0.95) - 1]:.1f} ms")


if __name__ == "__main__":
    main()
