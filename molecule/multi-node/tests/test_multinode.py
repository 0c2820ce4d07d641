"""Two inference hosts and a gateway: replicas load-balanced by LiteLLM, one key cluster-wide, and an
instance removed from the inventory leaves no unit, container or route behind.

Runs twice: after converge+idempotence (phase "full") and after side_effect.yml removed the instance
`solo` of molecule-stack-inf1 (phase "removed-solo", marked in /etc/solv-test-phase).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path

import pytest
import testinfra
import yaml

from solv_provision import routing

testinfra_hosts = ["ansible://molecule-stack-gw"]

ROOT = "/opt/solv"
GW, INF1, INF2 = "molecule-stack-gw", "molecule-stack-inf1", "molecule-stack-inf2"
PROMPT = "Which replica are you"
VERSIONS = yaml.safe_load((Path(__file__).resolve().parents[3] / "lab/images/versions.yml").read_text())
STANDIN = VERSIONS["vllm_standin"]

_REQUEST = (
    "import json, sys, urllib.request, urllib.error\n"
    "method, url, headers, body = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "req = urllib.request.Request(url, data=body.encode() if body else None, headers=headers, method=method)\n"
    "try:\n"
    "    r = opener.open(req, timeout=60)\n"
    "    out = {'status': r.status, 'body': r.read().decode()}\n"
    "except urllib.error.HTTPError as e:\n"
    "    out = {'status': e.code, 'body': e.read().decode()}\n"
    "except OSError as e:\n"
    "    out = {'status': -1, 'body': str(e)}\n"
    "print(json.dumps(out))\n"
)


# _answers' loop on the gateway host: requests for the replicated model until at least N were answered and both
# hosts (argv 5) answered; after 4N, one every 0.25 s, 75 s in all; prints who answered each, or the first failure.
_ANSWERS = (
    "import json, sys, time, urllib.request, urllib.error\n"
    "url, key, prompt, n, wanted = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), set(sys.argv[5].split(','))\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "body = json.dumps({'model': 'shared-model', 'messages': [{'role': 'user', 'content': prompt}]}).encode()\n"
    "headers = {'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'}\n"
    "seen, hosts, end = [], set(), time.monotonic() + 75\n"
    "while len(seen) < n or (hosts < wanted and time.monotonic() < end):\n"
    "    if len(seen) >= 4 * n:\n"
    "        time.sleep(0.25)\n"
    "    try:\n"
    "        r = opener.open(urllib.request.Request(url, data=body, headers=headers, method='POST'), timeout=60)\n"
    "        content = json.loads(r.read())['choices'][0]['message']['content']\n"
    "    except urllib.error.HTTPError as e:\n"
    "        print(json.dumps({'failed': {'status': e.code, 'body': e.read().decode()}, 'seen': seen}))\n"
    "        sys.exit(0)\n"
    "    who = content.split('@', 1)[1].split(']', 1)[0]\n"
    "    seen.append(who)\n"
    "    hosts.add(who.split(':', 1)[0])\n"
    "print(json.dumps({'seen': seen}))\n"
)


def other(name):
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    return testinfra.get_host(f"ansible://{name}?ansible_inventory={inventory}")


def http(host, method, url, token="", payload=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(payload) if payload is not None else ""
    result = json.loads(host.check_output("python3 -c %s %s %s %s %s", _REQUEST, method, url, json.dumps(headers), body))
    try:
        result["json"] = json.loads(result["body"])
    except ValueError:
        pass
    return result


@pytest.fixture(scope="module")
def phase(host):
    marker = host.file("/etc/solv-test-phase")
    return marker.content_string.strip() if marker.exists else "full"


@pytest.fixture(scope="module")
def hostvars(host):
    """Inventory variables of every host, with the side effect's removal applied in phase removed-solo."""
    out = {name: other(name).ansible.get_variables() for name in (INF1, INF2, GW)}
    return out


@pytest.fixture(scope="module")
def wanted(hostvars, phase):
    inference = {name: dict(hostvars[name]) for name in (INF1, INF2)}
    if phase == "removed-solo":
        inference[INF1]["vllm_models"] = [m for m in inference[INF1]["vllm_models"] if m["name"] != "solo"]
    return inference


@pytest.fixture(scope="module")
def master_key(host):
    return host.file(f"{ROOT}/secrets/litellm_master_key").content_string.strip()


@pytest.fixture(scope="module")
def base(hostvars):
    return f"http://{hostvars[GW]['solv_internal_address']}:4000"


def test_config_is_the_routing_of_the_inventory(host, wanted):
    config = yaml.safe_load(host.file(f"{ROOT}/litellm/config.yaml").content_string)
    want = routing.litellm_routing(wanted)
    assert config["model_list"] == want["model_list"]
    # The replicated model is one group with one deployment per inference host.
    bases = sorted(e["litellm_params"]["api_base"] for e in config["model_list"] if e["model_name"] == "shared-model")
    assert bases == ["http://10.213.62.11:8001/v1", "http://10.213.62.12:8001/v1"]


def test_models_listed_once_each(host, base, master_key, phase):
    r = http(host, "GET", f"{base}/v1/models", master_key)
    assert r["status"] == 200, r
    ids = [d["id"] for d in r["json"]["data"]]
    want = {"shared-model": 1, "limited-model": 1, "big-model": 1, **({"solo-model": 1} if phase == "full" else {})}
    assert Counter(ids) == Counter(want)


def test_replicated_model_answered_by_both_hosts(host, base, master_key):
    """Both replicas answer within 80 requests (LiteLLM routes by usage this minute: see _answers)."""
    seen = Counter()
    for i in range(80):
        if i >= 20 and set(seen) == {INF1, INF2}:
            break
        r = http(host, "POST", f"{base}/v1/chat/completions", master_key,
                 {"model": "shared-model", "messages": [{"role": "user", "content": PROMPT}]})
        assert r["status"] == 200, r
        answer = r["json"]["choices"][0]["message"]["content"]
        # "[shared-model@<inventory host>:8001 v<version>] echo: <prompt>"
        assert answer.startswith("[shared-model@") and answer.endswith(f":8001 v{STANDIN}] echo: {PROMPT}"), answer
        seen[answer.split("@", 1)[1].split(":", 1)[0]] += 1
    assert set(seen) == {INF1, INF2}, seen


def test_single_host_model_routed_or_gone(host, base, master_key, phase):
    r = http(host, "POST", f"{base}/v1/chat/completions", master_key,
             {"model": "solo-model", "messages": [{"role": "user", "content": PROMPT}]})
    if phase == "full":
        assert r["status"] == 200, r
        assert r["json"]["choices"][0]["message"]["content"] == f"[solo-model@{INF1}:8002 v{STANDIN}] echo: {PROMPT}"
    else:
        assert 400 <= r["status"] < 500, r


def test_removed_instance_leaves_nothing_behind(phase):
    inf1 = other(INF1)
    unit = "solv-vllm-solo"
    if phase == "full":
        assert inf1.service(unit).is_running
        return
    assert not inf1.file(f"/etc/systemd/system/{unit}.service").exists
    assert not inf1.file(f"{ROOT}/vllm/solo").exists
    assert not inf1.file(f"{ROOT}/gates/{unit}.json").exists  # `status` lists no unit that is gone
    assert inf1.run("docker inspect %s", unit).rc != 0
    assert "LoadState=not-found" in inf1.check_output("systemctl show %s -p LoadState", unit)
    assert not inf1.socket("tcp://10.213.62.11:8002").is_listening
    # The other instance of that host is untouched.
    assert inf1.service("solv-vllm-shared").is_running


REGISTRY = "10.213.62.20:5000"


def assert_pulled_from_registry(h, image):
    """`image` is on host `h` as pulled from the site registry by digest (its RepoDigests name the registry)."""
    digests = json.loads(h.check_output("docker image inspect -f '{{json .RepoDigests}}' %s", image))
    repo = image.rsplit(":", 1)[0]
    assert any(d.startswith(f"{REGISTRY}/{repo}@sha256:") for d in digests), (image, digests)


def test_images_came_from_the_site_registry_not_as_archives():
    """The gateway host runs the registry; every image given as an archive reached every host from it, pulled by
    digest (no archive was copied to any host), and the registry's own image came as its archive."""
    images = {INF1: [f"solv-lab/vllm-standin:{STANDIN}"], INF2: [f"solv-lab/vllm-standin:{STANDIN}"],
              GW: [f"solv-lab/litellm:{VERSIONS['litellm']}", f"solv-lab/redis:{VERSIONS['redis']}",
                   f"solv-lab/caddy:{VERSIONS['caddy']}"]}
    for name, wanted_images in images.items():
        h = other(name)
        assert json.loads(h.file("/etc/docker/daemon.json").content_string)["insecure-registries"] == [REGISTRY]
        for image in wanted_images:
            assert_pulled_from_registry(h, image)
        if name != GW:  # the gateway host loaded the registry's own image from its archive
            assert not h.file(f"{ROOT}/images").exists, f"an archive was staged on {name}"
    gw = other(GW)
    assert gw.service("solv-registry").is_running
    catalog = http(gw, "GET", f"http://{REGISTRY}/v2/_catalog")["json"]["repositories"]
    assert {"solv-lab/vllm-standin", "solv-lab/litellm", "solv-lab/redis", "solv-lab/caddy"} <= set(catalog)
    assert "solv-lab/registry" not in catalog  # its own image cannot come through itself
    # Nothing pushed by hand: the registry serves the tags the inventory names.
    tags = http(gw, "GET", f"http://{REGISTRY}/v2/solv-lab/vllm-standin/tags/list")["json"]["tags"]
    assert STANDIN in tags


def test_one_api_key_cluster_wide(master_key):
    inf1, inf2, gw = other(INF1), other(INF2), other(GW)
    key = inf1.file(f"{ROOT}/secrets/vllm_api_key").content_string.strip()
    assert len(key) >= 32
    # Owned by the first inference host only; the others read it from there.
    assert not inf2.file(f"{ROOT}/secrets/vllm_api_key").exists
    assert not gw.file(f"{ROOT}/secrets/vllm_api_key").exists
    for h, instance in ((inf1, "shared"), (inf2, "shared")):
        assert f"VLLM_API_KEY='{key}'\n" in h.file(f"{ROOT}/vllm/{instance}/env").content_string
    for env in (f"{ROOT}/litellm/env", f"{ROOT}/litellm/2/env"):  # both LiteLLM instances
        assert f"VLLM_API_KEY='{key}'\n" in gw.file(env).content_string
    # The master key lives on the gateway only.
    assert master_key.startswith("sk-")
    assert not inf1.file(f"{ROOT}/secrets/litellm_master_key").exists


def test_inference_ports_bound_to_their_own_address(wanted):
    for name, hv in wanted.items():
        h = other(name)
        for m in hv["vllm_models"]:
            if m.get("nodes"):  # a model across hosts: the host's network, the API on the host's own address
                listening = h.check_output("ss -Hltn 'sport = :%s'", str(m["port"])).split()
                assert f"{hv['solv_internal_address']}:{m['port']}" in listening, listening
                continue
            bindings = json.loads(h.check_output("docker inspect --format '{{json .HostConfig.PortBindings}}' %s",
                                                 f"solv-vllm-{m['name']}"))
            assert bindings == {f"{m['port']}/tcp": [{"HostIp": hv["solv_internal_address"], "HostPort": str(m["port"])}]}


def test_gateway_reaches_inference_but_keys_are_required(host, wanted):
    for name, hv in wanted.items():
        for m in hv["vllm_models"]:
            url = f"http://{hv['solv_internal_address']}:{m['port']}/v1/models"
            assert http(host, "GET", url)["status"] == 401


# Connects from one host to another: prints {port: true when something accepted the connection}.
_CONNECT = (
    "import json, socket, sys\n"
    "out = {}\n"
    "for port in map(int, sys.argv[2].split(',')):\n"
    "    s = socket.socket(); s.settimeout(3)\n"
    "    out[port] = s.connect_ex((sys.argv[1], port)) == 0\n"
    "    s.close()\n"
    "print(json.dumps(out))\n"
)


def _connects(client, address, ports):
    out = json.loads(client.check_output("python3 -c %s %s %s", _CONNECT, address, ",".join(map(str, ports))))
    return {int(k): v for k, v in out.items()}


def test_firewall_lets_only_the_gateway_reach_vllm(host, hostvars, wanted):
    """solv_firewall: the first inference host's vLLM port answers the gateway, not the other inference host
    (a machine of the same network that is not a gateway); SSH answers both; the table is loaded at boot."""
    inf1 = wanted[INF1]
    port = inf1["vllm_models"][0]["port"]
    assert _connects(host, inf1["solv_internal_address"], [22, port]) == {22: True, port: True}
    assert _connects(other(INF2), inf1["solv_internal_address"], [22, port]) == {22: True, port: False}
    h = other(INF1)
    assert h.service("solv-firewall-vllm").is_enabled
    table = h.check_output("nft list table inet solv_vllm")
    assert str(port) in table and "drop" in table and hostvars[GW]["solv_internal_address"] in table, table


# A client on the gateway host: N chat completions through LiteLLM, one after the other; prints the failures
# and which replica answered each success.
_LOOP = (
    "import json, os, ssl, sys, urllib.request, urllib.error\n"
    "url, key, model, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
    "ca = os.environ.get('SOLV_LOOP_CA')  # https: the entry point's CA\n"
    "handlers = [urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca))] if ca else []\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), *handlers)\n"
    "failed, by = [], {}\n"
    "for i in range(n):\n"
    "    body = json.dumps({'model': model, 'messages': [{'role': 'user', 'content': f'q{i}'}]}).encode()\n"
    "    req = urllib.request.Request(url, data=body, method='POST', headers={'Authorization': 'Bearer ' + key,\n"
    "                                 'Content-Type': 'application/json'})\n"
    "    try:\n"
    "        answer = json.loads(opener.open(req, timeout=60).read())['choices'][0]['message']['content']\n"
    "        replica = answer.split('@', 1)[1].split(':', 1)[0]\n"
    "        by[replica] = by.get(replica, 0) + 1\n"
    "    except urllib.error.HTTPError as e:\n"
    "        failed.append([i, e.code, e.read().decode()[:200]])\n"
    "    except OSError as e:\n"
    "        failed.append([i, -1, str(e)[:200]])\n"
    "print(json.dumps({'failed': failed, 'by': by}))\n"
)


def _in_rotation(host, base, master_key, name):
    """Wait until LiteLLM routes to `name` again (a replica that failed is cooled down for a few seconds). Up to
    75 s: the scenario's request limit makes LiteLLM route by each replica's usage this minute, and a replica
    that took a client loop's requests while the other restarted gets none until the minute is over."""
    end = time.monotonic() + 75
    while time.monotonic() < end:
        r = http(host, "POST", f"{base}/v1/chat/completions", master_key,
                 {"model": "shared-model", "messages": [{"role": "user", "content": PROMPT}]})
        if r["status"] == 200 and f"@{name}:" in r["json"]["choices"][0]["message"]["content"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"LiteLLM does not route to {name}")


def test_a_stopped_replica_costs_no_request(host, base, master_key, wanted):
    """One replica's unit stopped: LiteLLM retries on the other and cools the dead one down (allowed_fails 0),
    so a client through the gateway sees no failed request. The replica is in rotation when it stops."""
    inf2 = other(INF2)
    _in_rotation(host, base, master_key, INF2)
    inf2.check_output("systemctl stop solv-vllm-shared")
    try:
        out = json.loads(host.check_output("python3 -c %s %s %s %s %s", _LOOP, f"{base}/v1/chat/completions",
                                           master_key, "shared-model", "30"))
        assert out["failed"] == [] and out["by"] == {INF1: 30}, out
    finally:
        inf2.check_output("systemctl start solv-vllm-shared")
        health = f"http://{wanted[INF2]['solv_internal_address']}:8001/health"
        for _ in range(60):
            if http(host, "GET", health)["status"] == 200:
                break
            time.sleep(1)
        assert http(host, "GET", health)["status"] == 200


def test_an_unreachable_replica_host_costs_no_request(host, base, master_key, wanted):
    """One replica's host off the network (as a powered-off or cut-off host: no answer at all, not a refusal):
    LiteLLM's retry lands on the other replica and the unreachable one is cooled down; no request fails.
    The replica is in LiteLLM's rotation when it goes (not still cooling down from the test before)."""
    import subprocess

    network, inf2 = "molecule-stack-multi", wanted[INF2]["solv_internal_address"]
    _in_rotation(host, base, master_key, INF2)
    subprocess.run(["docker", "network", "disconnect", network, INF2], check=True, capture_output=True)
    try:
        out = json.loads(host.check_output("python3 -c %s %s %s %s %s", _LOOP, f"{base}/v1/chat/completions",
                                           master_key, "shared-model", "20"))
        assert out["failed"] == [] and out["by"] == {INF1: 20}, out
    finally:
        subprocess.run(["docker", "network", "connect", "--ip", inf2, network, INF2], check=True, capture_output=True)
    for _ in range(60):
        if http(host, "GET", f"http://{inf2}:8001/health")["status"] == 200:
            break
        time.sleep(1)
    assert http(host, "GET", f"http://{inf2}:8001/health")["status"] == 200


# The same client, in the background until /tmp/solv-loop.stop exists (at most 600 s); the result in
# /tmp/solv-loop.json.
_BACKGROUND_LOOP = _LOOP.replace(
    "for i in range(n):\n",
    "import os, time\nend = time.time() + 600\ni = 0\nwhile not os.path.exists('/tmp/solv-loop.stop') and time.time() < end:\n"
    "    i += 1\n",
).replace("print(json.dumps({'failed': failed, 'by': by}))\n",
          "open('/tmp/solv-loop.json', 'w').write(json.dumps({'failed': failed, 'by': by, 'requests': i}))\n")


def _start_loop(host, url, master_key, model="shared-model", ca=""):
    """_BACKGROUND_LOOP on the gateway host (ca: the CA file an https URL's certificate chains to)."""
    host.run("rm -f /tmp/solv-loop.stop /tmp/solv-loop.json")
    host.run("SOLV_LOOP_CA=%s setsid nohup python3 -c %s %s %s %s %s >/dev/null 2>&1 &", ca, _BACKGROUND_LOOP,
             url, master_key, model, "0")


def _stop_loop(host):
    """Stop the background loop; its result {failed, by, requests}."""
    host.run("touch /tmp/solv-loop.stop")
    for _ in range(120):
        if host.file("/tmp/solv-loop.json").exists:
            break
        time.sleep(1)
    return json.loads(host.file("/tmp/solv-loop.json").content_string)


def _upgrade(*args):
    return _cli("upgrade", *args)


def _cli(verb, *args):
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).parent / "solv-provision"
    inventory = Path(os.environ["MOLECULE_INVENTORY_FILE"]).parent
    run = subprocess.run([str(cli), verb, "-i", str(inventory), *args], capture_output=True, text=True,
                         timeout=900, check=False)
    return run.returncode, run.stdout + run.stderr


def _image(name, unit="solv-vllm-shared"):
    return json.loads(other(name).check_output("docker container inspect %s", unit))[0]


def _answers(host, base, master_key, n=20):
    """Which (host, version) answered each of at least n requests for the replicated model, once both replicas
    are in LiteLLM's rotation (one that failed or restarted a moment ago may still be cooling down), going on
    until both hosts answered (after 4n, one request every 0.25 s, up to 75 s in all): the scenario's request limit
    makes LiteLLM route by each replica's usage this minute, so a replica an earlier test spared gets the next
    requests until they are even, or until the minute is over."""
    for name in (INF1, INF2):
        _in_rotation(host, base, master_key, name)
    # One remote run for the whole loop (a testinfra call per request cost about a second each).
    out = json.loads(host.check_output("python3 -c %s %s %s %s %s %s", _ANSWERS, f"{base}/v1/chat/completions",
                                       master_key, PROMPT, str(n), f"{INF1},{INF2}"))
    assert "failed" not in out, out
    # "<host>:8001 v<version>" from "[shared-model@<host>:8001 v<version>] echo: <prompt>"
    return Counter((who.split(":", 1)[0], who.rsplit(" v", 1)[1]) for who in out["seen"])


def test_upgrade_to_a_release_and_to_a_broken_one_costs_no_request(host, base, master_key, phase):
    """`upgrade --service vllm` while a client on the gateway keeps sending requests through LiteLLM:
    to the stand-in's next release, one host at a time (each behind its health gate): every replica answers
    with the new version; then to a release that cannot start: the first host is rolled back to the running
    release and healthy, the second is untouched, the upgrade exits 1 naming host, service and the log line.
    No request of the client fails in all of it."""
    if phase != "removed-solo":
        pytest.skip("runs once, in the last verify")
    v1, v2 = STANDIN, VERSIONS["vllm_standin_next"]
    assert set(_answers(host, base, master_key)) == {(INF1, v1), (INF2, v1)}

    _start_loop(host, f"{base}/v1/chat/completions", master_key)
    try:
        rc, upgraded = _upgrade("--service", "vllm", "-e", json.dumps({"vllm_image_tag": v2}))
        assert rc == 0, upgraded[-5000:]
        assert set(_answers(host, base, master_key)) == {(INF1, v2), (INF2, v2)}
        inf2_started = _image(INF2)["State"]["StartedAt"]

        rc, broken = _upgrade("--service", "vllm", "-e", json.dumps({"vllm_image_tag": f"{v1}-broken"}))
    finally:
        out = _stop_loop(host)
    assert rc == 1, broken[-5000:]
    assert f"solv-vllm-shared on {INF1}: the new version failed its health gate and was ROLLED BACK to the " \
           f"previous version (solv-lab/vllm-standin:{v2}" in broken, broken[-5000:]
    assert "is healthy again" in broken and "Engine core initialization failed" in broken, broken[-5000:]
    assert f"untouched (the rollout stopped): {INF2}" in broken, broken[-5000:]
    assert _image(INF1)["Config"]["Image"] == f"solv-lab/vllm-standin:{v2}"
    assert _image(INF2)["Config"]["Image"] == f"solv-lab/vllm-standin:{v2}"
    assert _image(INF2)["State"]["StartedAt"] == inf2_started, "the host after the failed one was touched"
    # Both replicas serve v2 again: the rollback passed inf1's health gate ("is healthy again" above) and the
    # client loop below was answered by both hosts throughout (no second wait for LiteLLM's rotation: CI time).

    assert out["requests"] >= 20 and out["failed"] == [], out
    assert set(out["by"]) == {INF1, INF2}, out
    # Both releases reached the hosts through the site registry (the broken one only the first host).
    for name in (INF1, INF2):
        assert_pulled_from_registry(other(name), f"solv-lab/vllm-standin:{v2}")
    assert_pulled_from_registry(other(INF1), f"solv-lab/vllm-standin:{v1}-broken")


def test_turning_the_firewall_off_removes_its_table_and_unit(phase):
    """solv_firewall: false on a host that had it: the unit is stopped (its stop deletes the table) and removed;
    a run after that finds nothing to remove (the host's reading says the unit file is gone)."""
    if phase != "removed-solo":
        pytest.skip("runs once, in the last verify")
    inf2 = other(INF2)
    assert inf2.run("nft list table inet solv_vllm").rc == 0
    # The release the upgrade test left running, so that only the firewall differs.
    off = ("--limit", INF2, "--tags", "vllm", "-e",
           json.dumps({"solv_firewall": False, "vllm_image_tag": VERSIONS["vllm_standin_next"]}))
    rc, out = _cli("apply", *off)
    assert rc == 0, out[-5000:]
    assert f"changed {INF2}: Firewall: unit stopped (its stop deletes the table) | vllm" in out, out[-5000:]
    assert not inf2.file("/etc/systemd/system/solv-firewall-vllm.service").exists
    assert inf2.run("nft list table inet solv_vllm").rc != 0
    rc, again = _cli("apply", *off)
    assert rc == 0 and f"changed {INF2}:" not in again, again[-5000:]


# --- two LiteLLM instances, Redis, the entry point -----------------------------------------------------------
INSTANCE_PORTS = (4000, 4001)  # litellm_port and litellm_port + 1: the instances' published ports
ENTRY = "https://10.213.62.20"
CA = f"{ROOT}/secrets/caddy_ca_certificate"


def test_two_instances_share_redis_whose_password_stays_in_its_config(host, hostvars, master_key):
    """Both instances answer on their own ports and name Redis in their router settings; Redis reads its password
    from its 0600 config file (owned by the image's redis user), which no `docker inspect` shows, and refuses a
    client without it."""
    address = hostvars[GW]["solv_internal_address"]
    for port in INSTANCE_PORTS:
        r = http(host, "GET", f"http://{address}:{port}/v1/models", master_key)
        assert r["status"] == 200, (port, r)
    password = host.file(f"{ROOT}/secrets/litellm_redis_password").content_string.strip()
    assert len(password) >= 32
    conf = host.file(f"{ROOT}/redis/redis.conf")
    assert conf.mode == 0o600 and conf.uid == 999
    assert f'requirepass "{password}"' in conf.content_string
    for config in (f"{ROOT}/litellm/config.yaml", f"{ROOT}/litellm/2/config.yaml"):
        router = yaml.safe_load(host.file(config).content_string)["router_settings"]
        assert {k: router[k] for k in ("redis_host", "redis_port", "redis_password")} == {
            "redis_host": "solv-redis", "redis_port": 6379, "redis_password": "os.environ/REDIS_PASSWORD"}
    assert password not in host.check_output("docker inspect solv-redis solv-litellm solv-litellm-2")
    assert not host.socket("tcp://0.0.0.0:6379").is_listening  # one gateway host: Redis is not published
    redis = json.loads(host.check_output("docker inspect solv-redis"))[0]["NetworkSettings"]["Networks"]["solv"]
    ping = host.check_output("python3 -c %s %s", "import socket, sys\n"
                             "s = socket.create_connection((sys.argv[1], 6379), 5)\n"
                             "s.sendall(b'PING\\r\\n'); print(s.recv(200).decode())", redis["IPAddress"])
    assert ping.startswith("-NOAUTH"), ping


# Sequential requests for one model, one every `pace` s, alternating between the two instances' ports; a request
# the limit holds back waits (LiteLLM retries it in the next minute), so it is given up after 1 s. Prints
# {served, started, ended} (UTC minutes of the first and last request).
_ALTERNATING = (
    "import json, sys, time, urllib.request\n"
    "address, key, model, n, pace = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])\n"
    "opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))\n"
    "served, started = 0, time.strftime('%H:%M', time.gmtime())\n"
    "for i in range(n):\n"
    "    due = time.monotonic() + pace\n"
    "    body = json.dumps({'model': model, 'messages': [{'role': 'user', 'content': f'q{i}'}]}).encode()\n"
    "    req = urllib.request.Request(f'http://{address}:{4000 + i % 2}/v1/chat/completions', data=body,\n"
    "                                 headers={'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json'})\n"
    "    try:\n"
    "        opener.open(req, timeout=1).read(); served += 1\n"
    "    except Exception:\n"
    "        pass\n"
    "    time.sleep(max(0.0, due - time.monotonic()))\n"
    "print(json.dumps({'served': served, 'started': started, 'ended': time.strftime('%H:%M', time.gmtime())}))\n"
)


def test_a_rolling_upgrade_of_the_instances_costs_no_request_through_the_entry_point(host, master_key, phase,
                                                                                        tmp_path):
    """`upgrade --service litellm` to the image's next release while a client sends requests to the HTTPS entry
    point: the instances restart one at a time, each behind its health gate, and the entry point sends every
    request to an instance that answers (or again to the other, for one an instance dropped while stopping):
    no request fails, and both instances run the new release. The backup before it (this gateway host has no
    Open WebUI) holds the secrets and the entry point's CA."""
    if phase != "removed-solo":
        pytest.skip("runs once, in the last verify")
    v1 = VERSIONS["litellm"]
    r = http(host, "GET", f"{ENTRY}/v1/models", master_key)  # the client's URL is the entry point's
    assert r["status"] == -1 and "CERTIFICATE_VERIFY_FAILED" in r["body"], r  # (and its CA is needed)
    _start_loop(host, f"{ENTRY}/v1/chat/completions", master_key, ca=CA)
    try:
        time.sleep(3)
        rc, out = _upgrade("--service", "litellm", "--backup-dir", str(tmp_path),
                           "-e", json.dumps({"litellm_image_tag": f"{v1}-next"}))
        assert rc == 0, out[-5000:]
        time.sleep(3)
    finally:
        loop = _stop_loop(host)
    for unit in ("solv-litellm", "solv-litellm-2"):
        assert _image(GW, unit)["Config"]["Image"] == f"solv-lab/litellm:{v1}-next", unit
    assert loop["requests"] >= 20 and loop["failed"] == [], loop
    manifest = json.loads(next((tmp_path / GW).glob("*/manifest.json")).read_text())
    assert set(manifest["parts"]) == {"secrets", "caddy"} and set(manifest["skipped"]) == {"openwebui"}, manifest


def test_the_instances_enforce_one_rpm_limit_together(host, hostvars, master_key, phase):
    """limited-model has rpm 10. 16 requests 1.5 s apart, alternating between the two instances: 10 or 11 are
    served in all, where two separate counters serve all 16. Why 11 at most (LiteLLM 1.108.7,
    router_strategy/base_routing_strategy.py): an instance counts in memory and, once a second while it has new
    counts, adds them to Redis and takes Redis's total back. So within a second of each of its requests an
    instance learns every request the other had pushed, and at its next one (3 s later) misses at most the
    other's latest: one request beyond the limit. (Unpaced, the lag spans several requests: 10 to 13 served.)"""
    if phase != "removed-solo":
        pytest.skip("runs once, last: LiteLLM retries the held-back requests in the next minutes, and an instance "
                    "holding one takes its whole stop timeout to stop")
    while time.gmtime().tm_sec > 30:  # the 16 requests take 24 s, within LiteLLM's one-minute window
        time.sleep(0.5)
    out = json.loads(host.check_output("python3 -c %s %s %s %s %s %s", _ALTERNATING,
                                       hostvars[GW]["solv_internal_address"], master_key, "limited-model", "16", "1.5"))
    assert out["started"] == out["ended"], f"the requests crossed a minute: {out}"
    assert 10 <= out["served"] <= 11, out
