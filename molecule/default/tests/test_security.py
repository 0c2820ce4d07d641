"""Secrets stay in root-only files: not in `docker inspect`, the process list or the journal (issue 10).

Every secret the stack holds (the files of <root>/secrets) and every value of an env file whose name says
it is a key, token, secret or password is looked for in what an operator (or anyone in the docker group)
sees of the running stack.
"""

from __future__ import annotations

import json
import re

from conftest import ROOT, env_file, process_env, process_uid

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)


def _containers(host):
    return sorted(host.check_output("docker ps --filter name=^solv- --format '{{.Names}}'").split())


def _secret_values(host):
    values = set()
    for name in host.check_output("ls %s/secrets", ROOT).split():
        values.add(host.file(f"{ROOT}/secrets/{name}").content_string.strip())
    for path in host.check_output("find %s -name env -type f", ROOT).split():
        values |= {v for k, v in env_file(host, path).items() if _SECRET_NAME.search(k)}
    return {v for v in values if len(v) >= 8}


def _leaks(text, secrets):
    return sorted(s[:4] + "..." for s in secrets if s in text)


def test_every_container_gets_its_environment_from_a_root_only_file(host):
    names = _containers(host)
    assert len(names) >= 5, names
    for name in names:
        info = json.loads(host.check_output("docker inspect %s", name))[0]
        mounts = {m["Destination"]: m for m in info["Mounts"]}
        env = mounts["/run/solv/env"]
        assert env["RW"] is False, name
        f = host.file(env["Source"])
        assert f.mode == 0o600, name
        # The program sees exactly the file's values (the wrapper exported them, nothing else set them).
        wanted = env_file(host, env["Source"])
        seen = process_env(host, name)
        assert {k: seen.get(k) for k in wanted} == wanted, name


def test_no_secret_in_docker_inspect(host):
    secrets = _secret_values(host)
    assert len(secrets) >= 6, "expected the stack's keys and passwords"
    names = _containers(host)
    text = host.check_output("docker inspect " + " ".join(names))  # names of our own containers
    assert _leaks(text, secrets) == []
    # Docker's environment list of each container is the image's own: nothing of ours was added to it.
    for name in names:
        info = json.loads(host.check_output("docker inspect %s", name))[0]
        image_env = json.loads(host.check_output("docker image inspect --format '{{json .Config.Env}}' %s",
                                                 info["Image"]))
        assert sorted(info["Config"]["Env"] or []) == sorted(image_env or []), name


def test_no_secret_in_the_process_list_units_or_journal(host):
    secrets = _secret_values(host)
    assert _leaks(host.check_output("ps -eo args"), secrets) == []
    units = host.check_output("cat /etc/systemd/system/solv-*.service")
    assert _leaks(units, secrets) == []
    journal = host.check_output("journalctl --no-pager -o cat")
    assert _leaks(journal, secrets) == []


# --- exposure: what a machine on the hosts' network reaches ------------------------------------------------

# Connects from a throwaway container on the scenario's network (a machine next to the host) and prints
# {port: true when something accepted the connection}.
_SCAN = (
    "import json, socket, sys\n"
    "out = {}\n"
    "for port in map(int, sys.argv[2:]):\n"
    "    s = socket.socket(); s.settimeout(3)\n"
    "    out[port] = s.connect_ex((sys.argv[1], port)) == 0\n"
    "    s.close()\n"
    "print(json.dumps(out))\n"
)


def _scan_from_the_network(address, ports):
    import subprocess

    run = subprocess.run(["docker", "run", "--rm", "--network", "molecule-stack-default", "solv-lab/base:debian12",
                          "python3", "-c", _SCAN, address, *map(str, ports)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    return {int(k): v for k, v in json.loads(run.stdout).items()}


def test_from_the_network_only_ssh_the_entry_point_and_vllm_answer(address, models):
    vllm_ports = sorted(m["port"] for m in models.values())
    seen = _scan_from_the_network(address, [22, 80, 443, 4000, 8080, 8888, *vllm_ports])
    assert seen == {22: True, 80: True, 443: True, 4000: False, 8080: False, 8888: False,
                    **{p: True for p in vllm_ports}}  # vLLM: LiteLLM on other gateway hosts reaches it here


def test_every_container_runs_with_least_privilege(host):
    for name in _containers(host):
        hc = json.loads(host.check_output("docker inspect %s", name))[0]["HostConfig"]
        assert "no-new-privileges" in (hc["SecurityOpt"] or []), name
        assert [c.upper().removeprefix("CAP_") for c in hc["CapDrop"] or []] == ["ALL"], name
        assert not hc["CapAdd"] and not hc["Privileged"], name
    caddy = json.loads(host.check_output("docker inspect solv-caddy"))[0]
    assert caddy["Config"]["User"] == "8443:8443" and caddy["HostConfig"]["ReadonlyRootfs"] is True
    assert process_uid(host, "solv-caddy") == 8443 and process_uid(host, "solv-searxng") == 977
