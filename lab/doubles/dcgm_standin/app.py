"""NVIDIA DCGM exporter stand-in: the real exporter's CLI, counters file and exposition, fixed values, no GPU.

- CLI as dcgm-exporter: -f/--collectors FILE (env DCGM_EXPORTER_COLLECTORS, default
  /etc/dcgm-exporter/default-counters.csv), -a/--address [HOST]:PORT (env DCGM_EXPORTER_LISTEN, default :9400),
  -c/--collect-interval MS (accepted, unused). Exits 1, as the real one, when the counters file is missing or a
  line is not `DCGM_FI_<FIELD>, gauge|counter|label, help`.
- /metrics: for each GPU (SOLV_STANDIN_GPUS, default 2), every field of the counters file with its HELP and TYPE,
  labelled as dcgm-exporter 4.8 labels them (gpu, UUID, pci_bus_id, device, modelName, hostname); a field's value
  is fixed (FIXED below, else 0), so that tests and dashboards see plausible figures. /health answers 200.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_COLLECTORS = "/etc/dcgm-exporter/default-counters.csv"
_FIELD = re.compile(r"DCGM_FI_[A-Z0-9_]+")
_TYPES = ("gauge", "counter", "label")
MODEL = "NVIDIA H100 80GB HBM3"
# A busy H100 serving a model: vLLM holds 90 % of the framebuffer (MiB), the rest are its idle-ish figures.
FIXED = {
    "DCGM_FI_DEV_SM_CLOCK": 1980,
    "DCGM_FI_DEV_MEM_CLOCK": 2619,
    "DCGM_FI_DEV_MEMORY_TEMP": 45,
    "DCGM_FI_DEV_GPU_TEMP": 41,
    "DCGM_FI_DEV_POWER_USAGE": 312.5,
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": 912345678,
    "DCGM_FI_DEV_GPU_UTIL": 37,
    "DCGM_FI_DEV_MEM_COPY_UTIL": 12,
    "DCGM_FI_DEV_FB_FREE": 8135,
    "DCGM_FI_DEV_FB_USED": 73424,
}


class CountersError(RuntimeError):
    pass


def read_counters(path: str) -> list[tuple[str, str, str]]:
    """(field, type, help) per counters-file line; comments (#) and blank lines skipped."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise CountersError(f"could not read collectors file {path}: {e.strerror}") from None
    counters = []
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",", 2)]
        if len(parts) != 3 or not _FIELD.fullmatch(parts[0]) or parts[1] not in _TYPES:
            raise CountersError(f"{path}:{number}: not 'DCGM_FI_<FIELD>, gauge|counter|label, help': {line!r}")
        counters.append((parts[0], parts[1], parts[2]))
    if not counters:
        raise CountersError(f"{path}: no fields to watch")
    return counters


def exposition(counters: list[tuple[str, str, str]], gpus: int, hostname: str) -> str:
    """The /metrics text: each family's HELP, TYPE and one sample per GPU, as dcgm-exporter writes them."""
    out = []
    for field, kind, help_text in counters:
        if kind == "label":  # a label field adds a label to the others in the real exporter; none here
            continue
        out += [f"# HELP {field} {help_text}", f"# TYPE {field} {kind}"]
        for gpu in range(gpus):
            labels = (f'gpu="{gpu}",UUID="GPU-5a1d0000-0000-4000-8000-00000000000{gpu}",'
                      f'pci_bus_id="00000000:{0x18 + gpu:02X}:00.0",device="nvidia{gpu}",modelName="{MODEL}",'
                      f'hostname="{hostname}"')
            out.append(f"{field}{{{labels}}} {FIXED.get(field, 0)}")
    return "\n".join(out) + "\n"


def _listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise CountersError(f"invalid address {address!r}: want [HOST]:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dcgm-exporter")
    parser.add_argument("-f", "--collectors", default=os.environ.get("DCGM_EXPORTER_COLLECTORS", DEFAULT_COLLECTORS))
    parser.add_argument("-a", "--address", default=os.environ.get("DCGM_EXPORTER_LISTEN", ":9400"))
    parser.add_argument("-c", "--collect-interval", type=int, default=30000)
    args = parser.parse_args(argv)
    try:
        counters = read_counters(args.collectors)
        host, port = _listen(args.address)
    except CountersError as e:
        print(f"level=fatal msg=\"{e}\"", file=sys.stderr)
        return 1
    body = exposition(counters, int(os.environ.get("SOLV_STANDIN_GPUS", "2")), socket.gethostname()).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path not in ("/metrics", "/health"):
                self.send_error(404)
                return
            text = body if path == "/metrics" else b"OK"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

        def log_message(self, fmt: str, *a: object) -> None:
            pass

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    ThreadingHTTPServer.address_family = family
    server = ThreadingHTTPServer((host, port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"level=info msg=\"Starting webserver\" address={args.address} fields={len(counters)}", file=sys.stderr,
          flush=True)
    server.serve_forever()
    return 0
