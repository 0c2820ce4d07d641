"""After `apply` on the lab: print the URLs and one chat completion per model, answered through the gateway.

Usage: python3 scripts/lab_demo.py inventories/lab
Reads the LiteLLM master key from the gateway host with `solv-provision secrets show` (explicit request).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path


def main(inventory: str) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from solv_provision import inventory as inv_mod
    from solv_provision import routing, specs

    inv = inv_mod.load([inventory])
    gateway = inv.in_group("gateway")[0]
    hostvars = inv.hosts[gateway]
    address = routing.host_address(hostvars, gateway)

    def setting(name):
        value = hostvars.get(name)
        return value if value not in (None, "") and not isinstance(value, inv_mod.Unresolved) else specs.default(name)

    litellm = f"http://{setting('litellm_bind_address') or address}:{setting('litellm_port')}"
    webui = f"http://{setting('openwebui_bind_address') or address}:{setting('openwebui_port')}"
    key = subprocess.run(
        [str(Path(sys.executable).parent / "solv-provision"), "secrets", "show", "litellm_master_key",
         "-i", inventory, "--host", gateway],
        check=True, capture_output=True, text=True,
    ).stdout.strip()

    print(f"Open WebUI:      {webui}   (admin: solv-provision secrets show openwebui_admin_password -i {inventory} --host {gateway})")
    print(f"LiteLLM gateway: {litellm}/v1   (key: solv-provision secrets show litellm_master_key -i {inventory} --host {gateway})")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with urllib.request.urlopen(urllib.request.Request(f"{litellm}/v1/models", headers=headers), timeout=30) as r:
        models = [m["id"] for m in json.load(r)["data"]]
    print(f"models:          {', '.join(models)}")
    for model in models:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Say hello"}]}).encode()
        req = urllib.request.Request(f"{litellm}/v1/chat/completions", data=body, headers=headers)
        with urllib.request.urlopen(req, timeout=60) as r:
            answer = json.load(r)["choices"][0]["message"]["content"]
        print(f"chat via gateway [{model}]: {answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "inventories/lab"))
