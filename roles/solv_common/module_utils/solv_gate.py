# -*- coding: utf-8 -*-
# Apache-2.0
"""Health gates of SOLV containers, one implementation for every module that runs them: solv_container_wait
(after a restart), solv_status (read-only) and solv_backup (after a restore).

A gate is a list of checks run in order. HTTP: {url, status (accepted codes), headers, method, body (JSON,
POST), models (ids an OpenAI model list must contain), signin ({url, body, token}: POST body there first and
send the answer's `token` field as a bearer token), ca (https: a CA certificate file on the host the server's
certificate must chain to; "insecure" accepts any)}. Redis: {url: redis://host:port, password}: AUTH, then
PING must answer PONG. `{container_address}` in a URL is the container's
address on the gate's network. Gates are recorded on the host as <root_dir>/gates/<unit>.json (root-only:
they hold keys). `run` arguments are callables cmd -> (rc, stdout, stderr), e.g. AnsibleModule.run_command.
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

ADDRESS = "{container_address}"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_SECRET_PARAM = re.compile(r"key|token|secret|pass|auth|sig", re.IGNORECASE)


# --- what the host records and runs ------------------------------------------------------------------------
def read_gate(root_dir, name):
    """The recorded gate {name, checks, network?} of a unit, or None."""
    try:
        with open(os.path.join(root_dir, "gates", f"{name}.json"), encoding="utf-8") as f:
            gate = json.load(f)
    except (OSError, ValueError):
        return None
    return gate if isinstance(gate, dict) and isinstance(gate.get("checks"), list) else None


def address_on(networks, network):
    """The address in docker's NetworkSettings.Networks on `network` (brackets for IPv6), or None."""
    net = (networks or {}).get(network) or {}
    if net.get("IPAddress"):
        return net["IPAddress"]
    return f"[{net['GlobalIPv6Address']}]" if net.get("GlobalIPv6Address") else None


def container_address(run, docker, name, network):
    """The container's address on `network`, or None while it has none."""
    rc, out, _ = run([docker, "container", "inspect", "--format", "{{json .NetworkSettings.Networks}}", name])
    if rc != 0:
        return None
    try:
        return address_on(json.loads(out), network)
    except ValueError:
        return None


def unit_state(run, name):
    """(ActiveState, SubState, NRestarts, MainPID) of <name>.service."""
    rc, out, _ = run(["systemctl", "show", f"{name}.service", "--property=ActiveState,SubState,NRestarts,MainPID"])
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}
    return (values.get("ActiveState", ""), values.get("SubState", ""), int(values.get("NRestarts") or 0),
            int(values.get("MainPID") or 0))


def journal(run, name, lines=30):
    """The unit's last journal lines (messages only)."""
    rc, out, _ = run(["journalctl", "-u", f"{name}.service", "-n", str(lines), "--no-pager", "-o", "cat"])
    return out.strip() if rc == 0 else ""


# --- one check -------------------------------------------------------------------------------------------
def _opener(ca):
    """No proxy; for https with `ca`, that CA file (read now: a CA a service writes at its first start counts
    once it is there) or, for "insecure", no verification."""
    if not ca:
        return _NO_PROXY
    if ca == "insecure":
        context = ssl._create_unverified_context()  # the caller asked for it: a certificate it cannot verify
    else:
        try:
            context = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise OSError(f"CA certificate {ca}: {exc}") from None
    return urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))


def _fetch(url, method="GET", body=None, headers=None, timeout=5.0, ca=None):
    """(status, body bytes) of one request, an HTTP error's status included; raises OSError when nothing answers."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {**({"Content-Type": "application/json"} if data else {}), **(headers or {})}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with _opener(ca).open(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except urllib.error.URLError as exc:
        raise OSError(exc.reason) from None
    except ValueError as exc:
        raise OSError(str(exc)) from None


def _short(body):
    return " ".join(body.decode("utf-8", "replace").split())[:300]


def _signin(signin, resolve, timeout, ca=None):
    """The bearer token the sign-in answers with -> (token, None) or (None, why not)."""
    try:
        status, body = _fetch(resolve(signin["url"]), "POST", signin.get("body") or {}, timeout=timeout, ca=ca)
    except OSError as exc:
        return None, f"sign-in at {safe_url(signin['url'])}: no answer: {exc}"
    if status != 200:
        return None, f"sign-in at {safe_url(signin['url'])}: status {status}: {_short(body)}"
    try:
        token = json.loads(body).get(signin.get("token") or "token")
    except (ValueError, AttributeError):
        token = None
    return (token, None) if isinstance(token, str) and token else (None, "sign-in answered without a token")


def _resp(*words):
    """A Redis command in RESP."""
    parts = [f"*{len(words)}\r\n".encode()]
    for w in words:
        data = w.encode()
        parts.append(f"${len(data)}\r\n".encode() + data + b"\r\n")
    return b"".join(parts)


def _redis_ping(url, password, timeout):
    """(ok, detail) of AUTH (when a password is given) and PING against redis://host:port."""
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 6379), timeout=timeout) as sock:
            sock.sendall((_resp("AUTH", password) if password else b"") + _resp("PING"))
            answer = b""
            while b"PONG" not in answer and not answer.startswith(b"-") and len(answer) < 4096:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
    except OSError as exc:
        return False, f"no answer: {exc}"
    if b"+PONG" in answer and b"-" not in answer.split(b"\r\n", 1)[0]:
        return True, "ok"
    first = answer.split(b"\r\n", 1)[0].decode("utf-8", "replace")[:200]
    return False, f"answered {first!r} instead of PONG"


def check(c, address=None, timeout=5.0, post_timeout=30.0):
    """One check -> (ok, status, detail, body). POSTs (completions) get post_timeout."""
    if ADDRESS in c["url"] and not address:
        return False, -1, "the container has no address on its network yet", b""

    def resolve(url):
        return url.replace(ADDRESS, address) if address else url

    if c["url"].startswith("redis://"):
        ok, detail = _redis_ping(resolve(c["url"]), c.get("password") or "", timeout)
        return ok, 0 if ok else -1, detail, b""

    headers = dict(c.get("headers") or {})
    if c.get("signin"):
        token, why = _signin(c["signin"], resolve, post_timeout, c.get("ca"))
        if token is None:
            return False, -1, why, b""
        headers["Authorization"] = f"Bearer {token}"
    method = c.get("method") or "GET"
    try:
        status, body = _fetch(resolve(c["url"]), method, c.get("body"), headers,
                              post_timeout if method == "POST" else timeout, c.get("ca"))
    except OSError as exc:
        return False, -1, f"no answer: {exc}", b""
    accepted = c.get("status") or [200]
    if status not in accepted:
        answer = _short(body)
        return False, status, f"status {status}, want {accepted}" + (f": {answer}" if answer else ""), body
    wanted = c.get("models") or []
    if wanted:
        ids = model_ids(body)
        if ids is None:
            return False, status, "response is not an OpenAI model list", body
        missing = sorted(set(wanted) - set(ids))
        if missing:
            return False, status, f"models missing: {', '.join(missing)} (listed: {', '.join(ids)})", body
    return True, status, "ok", body


def model_ids(body):
    """Sorted data[].id of an OpenAI model list, or None when the body is not one."""
    try:
        return sorted({str(item.get("id")) for item in json.loads(body).get("data", [])})
    except (ValueError, AttributeError, TypeError):
        return None


def is_model_list(url):
    return urllib.parse.urlsplit(url).path.rstrip("/").endswith("/v1/models")


# --- a gate ----------------------------------------------------------------------------------------------
def run_gate(checks, address=None, timeout=5.0, post_timeout=30.0):
    """The checks in order until one fails -> (results [{url, status, ok, detail}], {model-list url: ids})."""
    results, models = [], {}
    for c in checks:
        ok, status, detail, body = check(c, address, timeout, post_timeout)
        results.append({"url": c["url"], "status": status, "ok": ok, "detail": detail})
        ids = model_ids(body) if ok and is_model_list(c["url"]) else None
        if ids is not None:
            models[c["url"]] = ids
        if not ok:
            break
    return results, models


# The first pause between rounds; it doubles up to `delay`: most services answer within a second of their start.
FIRST_PAUSE = 0.25


def wait(run, name, checks, timeout, delay=0.5, max_restarts=3, network="", docker="/usr/bin/docker",
         check_timeout=5.0, post_timeout=30.0):
    """Run the gate after a (re)start until it passes, `timeout` s pass, or systemd keeps restarting the unit;
    the pauses between rounds 0.25 s, doubling up to `delay`.

    -> {ok, crashed, elapsed, results, active, sub, restarts}: crashed when the unit failed or restarted
    max_restarts times during the wait."""
    start = time.monotonic()
    _, _, restarts0, _ = unit_state(run, name)
    needs_address = any(ADDRESS in c["url"] for c in checks)
    results, address, address_of = [], None, None
    pause = min(FIRST_PAUSE, delay)
    while True:
        active, sub, restarts, main_pid = unit_state(run, name)
        elapsed = round(time.monotonic() - start, 1)
        state = {"elapsed": elapsed, "active": active, "sub": sub, "restarts": restarts - restarts0}
        if restarts - restarts0 >= max_restarts or active == "failed":
            return {"ok": False, "crashed": True, "results": results, **state}
        # The unit's `docker run` (its main process, after ExecStartPre removed the previous container) has one
        # container, whose address does not change: asked for until known, and again when systemd starts another.
        if needs_address and (address is None or address_of != main_pid):
            address, address_of = container_address(run, docker, name, network or "solv"), main_pid
        results, _ = run_gate(checks, address, check_timeout, post_timeout)
        if all(r["ok"] for r in results):
            return {"ok": True, "crashed": False, "results": results, **state}
        if elapsed >= timeout:
            return {"ok": False, "crashed": False, "results": results, **state}
        time.sleep(pause)
        pause = min(pause * 2, delay)


def failure(outcome, timeout):
    """One line saying why a wait() failed."""
    if outcome["crashed"]:
        return (f"not ready, the container keeps exiting (unit {outcome['active']}/{outcome['sub']}, "
                f"restarted {outcome['restarts']} times in {outcome['elapsed']}s)")
    last = outcome["results"][-1] if outcome["results"] else {"url": "?", "detail": "no check ran"}
    return (f"not ready after {timeout:g}s: {safe_url(last['url'])}: {last['detail']} "
            f"(unit {outcome['active']}/{outcome['sub']})")


# --- what may leave the host -----------------------------------------------------------------------------
def safe_url(url):
    """A URL fit for output: no user:password, values of secret-looking query parameters replaced."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable url>"
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(
        f"{k}={'***' if _SECRET_PARAM.search(k) else v}" if sep else k
        for k, sep, v in (pair.partition("=") for pair in parts.query.split("&") if pair)
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def secrets_of(gate):
    """Every header value and sign-in password of a gate, and the token after 'Bearer ' (for redaction)."""
    values = set()
    for c in (gate or {}).get("checks", []):
        signin = ((c.get("signin") or {}).get("body") or {}).items()
        for v in (list((c.get("headers") or {}).values()) + [v for k, v in signin if _SECRET_PARAM.search(k)]
                  + ([c["password"]] if c.get("password") else [])):
            v = str(v)
            values.add(v)
            if " " in v:
                values.add(v.split(" ", 1)[1])
    return {v for v in values if len(v) >= 4}


def redact(value, secrets):
    """`value` (nested dicts, lists, strings) with every secret in a string replaced by ***."""
    if isinstance(value, dict):
        return {k: redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secrets) for v in value]
    if isinstance(value, str):
        for s in sorted(secrets, key=len, reverse=True):
            value = value.replace(s, "***")
    return value
