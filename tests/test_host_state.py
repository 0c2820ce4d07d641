"""solv_common's host reading (solv_host_state) and the filter that answers a container's probe from it
(solv_cached_probe): run as Ansible runs them against fake docker and systemctl. The filter must give
exactly what the one-container probe (solv_container_info) reports on the same host, or nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from module_runner import command

LIBRARY = REPO / "roles" / "solv_common" / "library"
sys.path.insert(0, str(REPO / "roles" / "solv_common" / "filter_plugins"))
from solv_common import solv_cached_probe  # noqa: E402

IMAGE_ID = "sha256:" + "a" * 64
OLD_ID = "sha256:" + "b" * 64
# Answers of the fake docker: one running container (solv-one), one gated container that does not exist
# (solv-two), two tagged images and an untagged one.
IMAGES = [
    {"Id": IMAGE_ID, "RepoTags": ["solv/one:1.0", "solv/one:latest"],
     "Config": {"Entrypoint": ["/bin/one"], "Cmd": ["serve"]}},
    {"Id": OLD_ID, "RepoTags": ["solv/two:2.0"], "Config": {"Entrypoint": None, "Cmd": ["/bin/sh"]}},
]
CONTAINERS = [{"Name": "/solv-one", "State": {"Running": True}, "Image": IMAGE_ID,
               "Config": {"Labels": {"solv.spec": "abc", "solv.image": "solv/one:1.0"}}}]
FAKE_DOCKER = f"""#!{sys.executable}
import json, sys
images, containers = {IMAGES!r}, {CONTAINERS!r}
args = sys.argv[1:]
def inspect(objects, key, names):
    found = [o for o in objects if key(o) in names]
    print(json.dumps(found))
    missing = [n for n in names if n not in map(key, objects)]
    for n in missing:
        print("Error response from daemon: No such object: " + n, file=sys.stderr)
    sys.exit(1 if missing else 0)
if args[:2] == ["image", "ls"]:
    print("\\n".join(t for i in images for t in i["RepoTags"]) + "\\n<none>:<none>")
elif args[:2] == ["network", "ls"]:
    print("bridge\\nsolv")
elif args[:2] == ["network", "inspect"]:
    if args[-1] in ("bridge", "solv"):
        print(args[-1])
    else:
        print("Error response from daemon: network " + args[-1] + " not found", file=sys.stderr); sys.exit(1)
elif args[:2] == ["container", "inspect"]:
    inspect(containers, lambda c: c["Name"][1:], args[2:])
elif args[:2] == ["image", "inspect"] and args[2] == "--format":
    hits = [i for i in images if args[-1] in i["RepoTags"]]
    if not hits:
        print("Error response from daemon: No such image: " + args[-1], file=sys.stderr); sys.exit(1)
    c = hits[0]["Config"]
    print(hits[0]["Id"] + "|" + json.dumps(c["Entrypoint"]) + "|" + json.dumps(c["Cmd"]))
elif args[:2] == ["image", "inspect"]:
    print(json.dumps([i for i in images if set(i["RepoTags"]) & set(args[2:])]))
else:
    print("unexpected: " + " ".join(args), file=sys.stderr); sys.exit(2)
"""
# systemctl show NAME... prints one block per unit, in the order asked, separated by blank lines.
FAKE_SYSTEMCTL = f"""#!{sys.executable}
import sys
units = [a for a in sys.argv[2:] if a.endswith(".service")]
blocks = []
for u in units:
    loaded = u == "solv-one.service"
    blocks.append("\\n".join([
        "Id=" + u, "LoadState=" + ("loaded" if loaded else "not-found"),
        "ActiveState=" + ("active" if loaded else "inactive"), "SubState=" + ("running" if loaded else "dead"),
        "UnitFileState=" + ("enabled" if loaded else ""), "NeedDaemonReload=no", "NRestarts=" + ("2" if loaded else "0")]))
print("\\n\\n".join(blocks))
"""


@pytest.fixture()
def host(tmp_path):
    """A host with solv-one (gate listing its paths, files, unit) and solv-two (an old gate without paths)."""
    root, systemd, bin_dir = tmp_path / "opt", tmp_path / "systemd", tmp_path / "bin"
    for d in (root / "gates", root / "one", systemd, bin_dir):
        d.mkdir(parents=True)
    (root / "one" / "config.yaml").write_text("a: 1\n")
    (root / "one" / "env").write_text("K='v'\n")
    (systemd / "solv-one.service").write_text("[Unit]\n")
    (systemd / "solv-vllm-old.service").write_text("[Unit]\n")
    (systemd / "other.service").write_text("[Unit]\n")
    paths = [str(root / "one"), str(root / "one" / "config.yaml"), str(root / "one" / "env"),
             str(systemd / "solv-one.service")]
    (root / "gates" / "solv-one.json").write_text(json.dumps({"name": "solv-one", "checks": [], "paths": paths}))
    (root / "gates" / "solv-two.json").write_text(json.dumps({"name": "solv-two", "checks": []}))
    for name, script in (("docker", FAKE_DOCKER), ("systemctl", FAKE_SYSTEMCTL)):
        (bin_dir / name).write_text(script)
        (bin_dir / name).chmod(0o755)
    return {"root": root, "systemd": systemd, "bin": bin_dir, "tmp": tmp_path,
            "paths": paths + [str(root / "gates" / "solv-one.json")]}


def _module(host, module, **args):
    path = host["tmp"] / f"{module}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "docker": str(host["bin"] / "docker")}}))
    env = {**os.environ, "PATH": f"{host['bin']}:{os.environ['PATH']}"}
    out = subprocess.run(command(LIBRARY / f"{module}.py", path), capture_output=True, text=True, env=env, check=False)
    result = json.loads(out.stdout)
    assert not result.get("failed"), result
    return result


def _reading(host):
    return _module(host, "solv_host_state", root_dir=str(host["root"]), systemd_dir=str(host["systemd"]))


def _alone(host, name, image, paths, network="solv"):
    r = _module(host, "solv_container_info", name=name, image=image, paths=paths, network=network)
    return {k: r[k] for k in ("paths", "image_id", "image_config", "container", "unit", "network_exists")}


def test_one_call_reads_every_gated_container_its_paths_images_networks_and_unit_files(host):
    r = _reading(host)
    assert r["changed"] is False and r["usable"] is True
    assert r["gates"] == {"solv-one": host["paths"][:-1], "solv-two": []}
    assert set(r["paths"]) == set(host["paths"]) | {str(host["root"] / "gates" / "solv-two.json")}
    assert r["paths"][str(host["root"] / "one" / "config.yaml")]["exists"] is True
    assert set(r["containers"]) == {"solv-one"}  # solv-two has a gate but no container
    assert r["units"]["solv-one"]["n_restarts"] == 2 and r["units"]["solv-two"]["load_state"] == "not-found"
    assert r["images"]["solv/one:1.0"] == {"id": IMAGE_ID, "config": {"entrypoint": ["/bin/one"], "cmd": ["serve"]}}
    assert set(r["images"]) == {"solv/one:1.0", "solv/one:latest", "solv/two:2.0"}
    assert r["networks"] == ["bridge", "solv"]
    assert r["unit_files"] == ["solv-one", "solv-vllm-old"]


def test_a_covered_container_reads_exactly_as_the_probe_of_it_alone(host):
    reading = _reading(host)
    cached = solv_cached_probe(reading, "solv-one", "solv/one:1.0", host["paths"], "solv")
    assert cached == _alone(host, "solv-one", "solv/one:1.0", host["paths"])
    # A gated container that does not exist, with an image present and a network that does not exist.
    gate_two = [str(host["root"] / "gates" / "solv-two.json")]
    cached = solv_cached_probe(reading, "solv-two", "solv/two:2.0", gate_two, "elsewhere")
    assert cached == _alone(host, "solv-two", "solv/two:2.0", gate_two, network="elsewhere")
    assert cached["container"]["exists"] is False and cached["network_exists"] is False


@pytest.mark.parametrize("case", ["unread", "unusable", "no gate", "a new path", "image not a tag", "image missing"])
def test_what_the_reading_does_not_cover_is_probed_alone(host, case):
    reading = _reading(host)
    name, image, paths = "solv-one", "solv/one:1.0", host["paths"]
    if case == "unread":
        reading = None
    elif case == "unusable":
        reading = {"usable": False}
    elif case == "no gate":
        name = "solv-three"
    elif case == "a new path":
        paths = paths + [str(host["root"] / "one" / "new.toml")]
    elif case == "image not a tag":
        image = "docker.io/solv/one:1.0"  # the same image, but not as `docker image ls` names it
    else:
        image = "solv/one:2.0"  # an upgrade's new tag, not loaded yet: the probe of it alone says so
    assert solv_cached_probe(reading, name, image, paths, "solv") is None


def test_without_docker_the_reading_is_unusable(host):
    path = host["tmp"] / "args.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"root_dir": str(host["root"]), "systemd_dir": str(host["systemd"]),
                                                        "docker": str(host["tmp"] / "no-docker")}}))
    out = subprocess.run(command(LIBRARY / "solv_host_state.py", path), capture_output=True, text=True, check=False)
    assert json.loads(out.stdout)["usable"] is False


# --- what container_run.yml does, decided from what container_files.yml found ----------------------------
from solv_common import solv_container_actions, solv_container_state  # noqa: E402

SPEC = {"sha": "abc", "unit_path": "/etc/systemd/system/solv-one.service", "image": "solv/one:1.0", "start_timeout": 60,
        "dirs": [{"path": "/opt/solv/one", "mode": "0750"}]}
RUNNING = {"image_id": IMAGE_ID, "network_exists": True,
           "paths": {"/opt/solv/one": {"exists": True, "isdir": True, "mode": "0750", "owner": "root", "group": "root"}},
           "container": {"exists": True, "running": True, "image_id": IMAGE_ID, "labels": {"solv.spec": "abc"}},
           "unit": {"load_state": "loaded", "active_state": "active", "unit_file_state": "enabled",
                    "need_daemon_reload": False}}
APPLY = {"stage": False, "check_mode": False, "images_present": [], "networks_present": []}


def _state(probe=RUNNING, pending=(), spec=SPEC, **ctx):
    return solv_container_state(spec, list(pending), probe, [], "solv", {**APPLY, **ctx})


def _with(**changes):
    probe = json.loads(json.dumps(RUNNING))
    for dotted, value in changes.items():
        *path, key = dotted.split("__")
        target = probe
        for p in path:
            target = target[p]
        target[key] = value
    return probe


def test_a_container_as_wanted_is_in_sync_and_container_run_does_nothing():
    state = _state()
    assert state["in_sync"] is True
    assert not any(solv_container_actions(state, SPEC["image"], APPLY).values())


@pytest.mark.parametrize("probe, spec, pending, action", [
    (_with(container__labels={"solv.spec": "old"}), SPEC, (), "restart"),  # the wanted spec changed
    (_with(container__image_id=OLD_ID), SPEC, (), "restart"),  # the tag now names another image
    (_with(container__running=False), SPEC, (), "restart"),
    (_with(unit__active_state="failed"), SPEC, (), "restart"),
    (_with(unit__unit_file_state="disabled"), SPEC, (), "enable"),
    (_with(unit__need_daemon_reload=True), SPEC, (), "reload"),
    (RUNNING, SPEC, ({"path": SPEC["unit_path"]},), "reload"),  # the unit file is rewritten
    (_with(network_exists=False), SPEC, (), "network"),
    (_with(image_id=""), SPEC, (), "restart"),  # no image of that tag yet
])
def test_anything_that_differs_takes_the_container_out_of_sync(probe, spec, pending, action):
    state = _state(probe, pending, spec)
    assert state["in_sync"] is False
    assert solv_container_actions(state, SPEC["image"], APPLY)[action] is True


def test_a_file_or_directory_that_differs_is_written_even_where_nothing_restarts():
    """container_files.yml skips its writing tasks (one include) only for a container in sync with nothing to write:
    a health gate file that changed restarts nothing, and must still be written."""
    assert _state()["writes"] is False
    gate = _state(pending=({"path": "/opt/solv/gates/solv-one.json"},))
    assert gate["in_sync"] is True and gate["writes"] is True
    assert _state(_with(paths={"/opt/solv/one": {**RUNNING["paths"]["/opt/solv/one"], "mode": "0755"}}))["writes"] is True
    assert _state(None)["writes"] is True  # nothing read: everything is written


def test_made_present_earlier_in_the_run_is_not_made_again_and_staging_does_nothing():
    state = _state(_with(network_exists=False, image_id=""))
    later = {**APPLY, "networks_present": ["solv"], "images_present": [SPEC["image"]]}
    assert solv_container_actions(state, SPEC["image"], later)["network"] is False
    assert not any(solv_container_actions(state, SPEC["image"], {**APPLY, "stage": True}).values())
    assert _state(_with(network_exists=False), stage=True)["in_sync"] is True


def test_a_dry_run_says_a_unit_not_on_the_host_would_be_installed():
    fresh = _state(None, check_mode=True)
    assert fresh["in_sync"] is False
    assert solv_container_actions(fresh, SPEC["image"], {**APPLY, "check_mode": True})["dry_new"] is True
