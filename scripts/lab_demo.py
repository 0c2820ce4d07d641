"""After `apply` on the lab: print the HTTPS entry point and one chat completion per model answered through it, and
with monitoring on what Prometheus sees.

Usage: python3 scripts/lab_demo.py inventories/lab
Reads the LiteLLM master key and the entry point's CA certificate from the gateway host with
`solv-provision secrets show` (explicit request); the CA goes to ~/.cache/solv-provision/lab-ca.pem.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def main(inventory: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from solv_provision import inventory as inv_mod
    from solv_provision import monitoring, paths, routing, specs

    inv = inv_mod.load([inventory])
    gateway = inv.in_group("gateway")[0]
    hostvars = inv.hosts[gateway]
    address = routing.host_address(hostvars, gateway)

    def setting(name):
        value = hostvars.get(name)
        return value if value not in (None, "") and not isinstance(value, inv_mod.Unresolved) else specs.default(name)

    port = setting("caddy_https_port")
    entry = f"https://{setting('caddy_bind_address') or address}" + ("" if port == 443 else f":{port}")

    def secret(name):
        return subprocess.run(
            [str(Path(sys.executable).parent / "solv-provision"), "secrets", "show", name, "-i", inventory,
             "--host", gateway],
            check=True, capture_output=True, text=True,
        ).stdout.strip()

    key = secret("litellm_master_key")
    # The entry point's private CA: what a client of the lab must trust.
    ca = paths.cache_dir() / "lab-ca.pem"
    ca.parent.mkdir(parents=True, exist_ok=True)
    ca.write_text(secret("caddy_ca_certificate") + "\n")
    context = ssl.create_default_context(cafile=str(ca))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))

    print(f"HTTPS entry point: {entry}   (the only address for users; CA certificate: {ca})")
    print(f"Open WebUI:        {entry}/   (admin: solv-provision secrets show openwebui_admin_password -i {inventory} --host {gateway})")
    print(f"OpenAI API:        {entry}/v1   (key: solv-provision secrets show litellm_master_key -i {inventory} --host {gateway})")
    print(f"                   e.g. SSL_CERT_FILE={ca} OPENAI_BASE_URL={entry}/v1 OPENAI_API_KEY=... your-client")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with opener.open(urllib.request.Request(f"{entry}/v1/model/info", headers=headers), timeout=30) as r:
        modes = {m["model_name"]: (m.get("model_info") or {}).get("mode") for m in json.load(r)["data"]}
    print(f"models:            {', '.join(sorted(modes))}")
    for model, mode in sorted(modes.items()):
        if mode == "embedding":  # an embedding model (Open WebUI's document search) answers embeddings, not chats
            body = json.dumps({"model": model, "input": "Say hello"}).encode()
            req = urllib.request.Request(f"{entry}/v1/embeddings", data=body, headers=headers)
            with opener.open(req, timeout=60) as r:
                vector = json.load(r)["data"][0]["embedding"]
            print(f"embedding via {entry} [{model}]: {len(vector)} dimensions")
            continue
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello"}]}).encode()
        req = urllib.request.Request(f"{entry}/v1/chat/completions", data=body, headers=headers)
        with opener.open(req, timeout=60) as r:
            answer = json.load(r)["choices"][0]["message"]["content"]
        print(f"chat via {entry} [{model}]: {answer}")
    if inv.in_group(monitoring.GROUP):
        _monitoring(inv, inv.in_group(monitoring.GROUP)[0], setting)
    return 0


def _monitoring(inv, host, setting) -> None:
    """Prometheus's and Alertmanager's addresses, and what Prometheus sees (targets up, alerts firing)."""
    from solv_provision import routing

    address = routing.host_address(inv.hosts[host], host)
    prometheus = f"http://{address}:{setting('prometheus_port')}"
    print(f"Prometheus:        {prometheus}   (alerts: {prometheus}/alerts; Alertmanager: "
          f"http://{address}:{setting('alertmanager_port')})")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    # Right after a first apply some targets have not been scraped yet: wait up to a scrape interval or two.
    for _ in range(40):
        with opener.open(f"{prometheus}/api/v1/targets?state=active", timeout=30) as r:
            targets = json.load(r)["data"]["activeTargets"]
        if targets and all(t["health"] != "unknown" for t in targets):
            break
        time.sleep(1)
    up = [t for t in targets if t["health"] == "up"]
    with opener.open(f"{prometheus}/api/v1/alerts", timeout=30) as r:
        firing = [a["labels"]["alertname"] for a in json.load(r)["data"]["alerts"] if a["state"] == "firing"]
    print(f"monitoring:        {len(up)} of {len(targets)} targets up; alerts firing: {', '.join(firing) or 'none'}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "inventories/lab"))
