"""SearXNG stand-in: reads settings.yml like SearXNG, refuses what SearXNG refuses, answers offline.

- settings: $SEARXNG_SETTINGS_PATH or /etc/searxng/settings.yml; missing keys take SearXNG's
  defaults (search.formats [html], server.secret_key "ultrasecretkey", limiter off). Env overrides as
  SearXNG: SEARXNG_SECRET, SEARXNG_LIMITER, SEARXNG_PUBLIC_INSTANCE.
- start: exit 1 when the secret key is missing, empty or "ultrasecretkey", or when public_instance
  is on without a valkey url; the limiter without valkey only logs an error (as SearXNG).
- listen: SEARXNG_BIND_ADDRESS / SEARXNG_PORT, default 0.0.0.0:8080 (the container's port; like the
  real image it does not follow server.port, which only the dev server reads).
- routes: /healthz; /search?q=..&format=json|html (403 when the format is not in search.formats).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import os
import signal
import socket
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

log = logging.getLogger("searx.webapp")

DEFAULT_SETTINGS = "/etc/searxng/settings.yml"
_FALSE = ("0", "false", "no", "off", "")


class SettingsError(RuntimeError):
    pass


def _env_bool(name: str, current: bool) -> bool:
    value = os.environ.get(name)
    return current if value is None else value.strip().lower() not in _FALSE


def load_settings(path: str) -> dict:
    """The effective settings, or SettingsError where SearXNG would exit."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        log.warning("no settings at %s: using the built-in defaults", path)
        data = {}
    except yaml.YAMLError as err:
        raise SettingsError(f"{path}: invalid YAML: {err}") from err
    if not isinstance(data, dict):
        raise SettingsError(f"{path}: settings must be a mapping")
    server = dict(data.get("server") or {})
    search = dict(data.get("search") or {})
    secret = os.environ.get("SEARXNG_SECRET") or server.get("secret_key") or "ultrasecretkey"
    if secret == "ultrasecretkey":
        raise SettingsError("server.secret_key is not changed. Please use something else instead of ultrasecretkey.")
    formats = search.get("formats") or ["html"]
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise SettingsError("search.formats must be a list of strings")
    valkey = (data.get("valkey") or {}).get("url") or (data.get("redis") or {}).get("url")
    eff = {
        "formats": formats,
        "limiter": _env_bool("SEARXNG_LIMITER", bool(server.get("limiter", False))),
        "public_instance": _env_bool("SEARXNG_PUBLIC_INSTANCE", bool(server.get("public_instance", False))),
        "valkey": valkey,
        "instance_name": (data.get("general") or {}).get("instance_name", "SearXNG"),
    }
    if (eff["limiter"] or eff["public_instance"]) and not valkey:
        log.error("The limiter requires Valkey, please consult the documentation: "
                  "https://docs.searxng.org/admin/searx.limiter.html")
        if eff["public_instance"]:
            raise SettingsError("public_instance needs Valkey")
    return eff


def results(query: str, identity: str) -> list[dict]:
    """Three deterministic results for a query."""
    slug = hashlib.sha256(query.encode()).hexdigest()[:8]
    return [
        {"url": f"https://example.org/{slug}/{i}", "title": f"{query} - result {i}",
         "content": f"Stand-in result {i} for '{query}' from {identity}.",
         "engine": "standin", "engines": ["standin"], "positions": [i], "score": 1.0 / i,
         "category": "general"}
        for i in (1, 2, 3)
    ]


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def get_request(self):
        conn, addr = super().get_request()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, addr


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "searxng-standin"
    settings: dict
    identity: str

    def log_message(self, fmt: str, *args) -> None:
        log.info("%s %s", self.address_string(), fmt % args)

    def _send(self, status: int, body: str, ctype: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _params(self) -> dict[str, str]:
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        if self.command == "POST":
            length = int(self.headers.get("Content-Length") or 0)
            params.update(parse_qs(self.rfile.read(length).decode("utf-8", "replace")))
        return {k: v[0] for k, v in params.items()}

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._send(HTTPStatus.OK, "OK", "text/plain")
        elif path == "/search":
            self._search(self._params())
        elif path == "/":
            self._send(HTTPStatus.OK, f"<html><title>{self.settings['instance_name']}</title></html>", "text/html")
        else:
            self._send(HTTPStatus.NOT_FOUND, "Not Found", "text/plain")

    do_HEAD = do_GET
    do_POST = do_GET

    def _search(self, params: dict[str, str]) -> None:
        fmt = params.get("format", "html")
        if fmt not in ("html", "json", "csv", "rss"):
            fmt = "html"
        if fmt not in self.settings["formats"]:
            self._send(HTTPStatus.FORBIDDEN, "<h1>403 Forbidden</h1>", "text/html")
            return
        query = params.get("q", "").strip()
        if not query:
            if fmt == "html":
                self._send(HTTPStatus.OK, "<html><body>index</body></html>", "text/html")
            else:
                self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": "No query"}), "application/json")
            return
        found = results(query, self.identity)
        if fmt == "json":
            body = {"query": query, "number_of_results": len(found), "results": found, "answers": [],
                    "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []}
            self._send(HTTPStatus.OK, json.dumps(body), "application/json")
        elif fmt == "html":
            items = "".join(f'<article><a href="{html.escape(r["url"])}">{html.escape(r["title"])}</a>'
                            f"<p>{html.escape(r['content'])}</p></article>" for r in found)
            self._send(HTTPStatus.OK, f"<html><body>{items}</body></html>", "text/html")
        else:  # csv/rss: allowed but not modelled
            self._send(HTTPStatus.OK, "\n".join(r["url"] for r in found), "text/plain")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s: %(message)s")
    path = os.environ.get("SEARXNG_SETTINGS_PATH") or DEFAULT_SETTINGS
    try:
        settings = load_settings(path)
    except SettingsError as err:
        log.error("%s", err)
        return 1
    bind = os.environ.get("SEARXNG_BIND_ADDRESS") or "0.0.0.0"
    port = int(os.environ.get("SEARXNG_PORT") or 8080)
    identity = os.environ.get("SOLV_STANDIN_IDENTITY") or socket.gethostname()
    handler = type("BoundHandler", (Handler,), {"settings": settings, "identity": identity})
    host = bind.strip("[]")
    if ":" in host:  # an IPv6 address, e.g. the image's usual [::]
        Server.address_family = socket.AF_INET6
    server = Server((host, port), handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("settings %s: formats=%s; listening on %s:%d", path, settings["formats"], bind, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
