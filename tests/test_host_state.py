"""solv_common's host reading (solv_host_state) and the filter that answers a container's probe from it
(solv_cached_probe): run as Ansible runs them against fake docker and systemctl. The filter must give
exactly what the one-container probe (solv_container_info) reports on the same host, or nothing."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import pytest
import yaml

from conftest import REPO
from module_runner import command
from play_runner import run_play

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
# `docker load --input A` tags the lines of A (after LOAD_SECONDS, and not while a `hold` file lies beside it), or
# fails for an archive that starts with "bad"; every load is logged in the `loads` file beside it.
LOAD_SECONDS = 0.6
FAKE_DOCKER = f"""#!{sys.executable}
import json, os, sys, time
images, containers = {IMAGES!r}, {CONTAINERS!r}
here = os.path.dirname(os.path.abspath(__file__))
loaded = os.path.join(here, "loaded")
if os.path.exists(loaded):
    images += [{{"Id": "sha256:" + "c" * 64, "RepoTags": [t], "Config": {{"Entrypoint": None, "Cmd": None}}}}
               for t in open(loaded).read().split()]
args = sys.argv[1:]
if args[:1] == ["load"]:
    with open(os.path.join(here, "loads"), "a") as log:
        log.write(args[-1] + "\\n")
    time.sleep({LOAD_SECONDS})
    for _ in range(300):
        if not os.path.exists(os.path.join(here, "hold")):
            break
        time.sleep(0.1)
    tags = open(args[-1]).read().split()
    if tags[:1] == ["bad"]:
        print("Error: archive/tar: invalid tar header", file=sys.stderr); sys.exit(1)
    with open(loaded, "a") as f:
        f.write("\\n".join(tags) + "\\n")
    print("\\n".join("Loaded image: " + t for t in tags)); sys.exit(0)
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
    missing = [n for n in args[2:] if not any(n in i["RepoTags"] for i in images)]
    for n in missing:
        print("Error response from daemon: No such image: " + n, file=sys.stderr)
    sys.exit(1 if missing else 0)
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


def test_with_secrets_dir_the_reading_brings_the_host_s_secret_files_as_solv_secret_reads_them(host):
    """The host's one reading carries its secret files, so that a role's secrets step needs no call of its own on
    an unchanged host: the same values solv_secret's `all` returns (one reader, module_utils/solv_secret_files)."""
    secrets = host["root"] / "secrets"
    secrets.mkdir(mode=0o700)
    (secrets / "vllm_api_key").write_text("sk-abc\n")
    (secrets / "caddy_ca_certificate").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    (secrets / "empty").write_text("")
    (secrets / "half.rotating").write_text("x")
    (secrets / ".hidden").write_text("x")
    (secrets / "a-dir").mkdir()
    reading = _module(host, "solv_host_state", root_dir=str(host["root"]), systemd_dir=str(host["systemd"]),
                      secrets_dir=str(secrets))
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert reading["secret_files"] == {"vllm_api_key": "sk-abc", "caddy_ca_certificate": pem}
    assert "secret_files" not in _reading(host)  # only where asked for
    args = host["tmp"] / "secret.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {"dir": str(secrets), "secrets": [{"name": "vllm_api_key"}],
                                                        "all": True}}))
    read = json.loads(subprocess.run(command(LIBRARY / "solv_secret.py", args), capture_output=True, text=True,
                                     check=False).stdout)
    assert read["files"] == reading["secret_files"] and read["changed"] is False


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


# --- loading archives in the background (solv_image_archive_shared) --------------------------------------------


def _archive(host, name, *lines):
    path = host["tmp"] / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _load(host, *archives, check=False):
    """The reading with `load`: [(archive, [images])...]."""
    wanted = [{"archive": a, "images": images} for a, images in archives]
    extra = {"_ansible_check_mode": True} if check else {}
    return _module(host, "solv_host_state", root_dir=str(host["root"]), systemd_dir=str(host["systemd"]),
                   load=wanted, **extra)["loading"]


def _loads(host):
    log = host["bin"] / "loads"
    return log.read_text().split() if log.exists() else []


def _waiter():
    """image.yml's wait for a background load: its argv up to its own arguments."""
    def tasks(items):
        for t in items:
            yield t
            yield from tasks(t.get("block", []) + t.get("always", []))
    image_yml = yaml.safe_load((REPO / "roles" / "solv_common" / "tasks" / "image.yml").read_text())
    [task] = [t for t in tasks(image_yml) if t["name"].startswith("Image: wait for its load begun in the background")]
    return task["ansible.builtin.command"]["argv"][:4]


def _wait(host, path, image):
    return subprocess.run([*_waiter(), path, str(host["bin"] / "docker"), image],
                          capture_output=True, text=True, timeout=30, check=False)


def test_the_archives_with_an_image_the_host_lacks_load_in_the_background_once(host):
    new = _archive(host, "new.tar", "solv/new:1")
    held = _archive(host, "one.tar", "solv/one:1.0")
    both = _archive(host, "both.tar", "solv/big:1", "solv/two:2.0")
    hold = host["bin"] / "hold"
    hold.touch()  # the loads last until the second reading is done, however slow the machine
    loading = _load(host, (new, ["solv/new:1"]), (held, ["solv/one:1.0"]), (both, ["solv/big:1", "solv/two:2.0"]))
    assert sorted(loading) == sorted([new, both])  # solv/one:1.0 is there already
    # Read again while they load (the next container's reading): the same loads, none started twice.
    assert _load(host, (new, ["solv/new:1"]), (both, ["solv/big:1", "solv/two:2.0"])) == loading
    hold.unlink()
    done = _wait(host, loading[both], "solv/big:1")
    assert done.returncode == 0 and "Loaded image: solv/big:1" in done.stdout
    assert _wait(host, loading[new], "solv/new:1").returncode == 0
    assert sorted(_loads(host)) == sorted([new, both])  # each once
    # Loaded: the next reading forgets them.
    assert _load(host, (new, ["solv/new:1"]), (both, ["solv/big:1"])) == {}
    assert not any(os.scandir(host["root"] / "images" / "loading"))


def test_the_largest_archive_loads_beside_the_others_which_load_one_after_the_other(host):
    """The longest load does not wait for the others, nor they for it; the others keep the play's order."""
    first = _archive(host, "first.tar", "solv/first:1")
    large = _archive(host, "large.tar", "solv/large:1", "solv/large-too:1", "solv/and-more:1")
    last = _archive(host, "last.tar", "solv/last:1")
    hold = host["bin"] / "hold"
    hold.touch()
    loading = _load(host, (first, ["solv/first:1"]), (large, ["solv/large:1"]), (last, ["solv/last:1"]))
    for _ in range(100):  # both loaders begin: the largest archive beside the first, the last one behind it
        if len(_loads(host)) == 2:
            break
        time.sleep(0.1)
    time.sleep(2 * LOAD_SECONDS)
    assert sorted(_loads(host)) == sorted([first, large])
    pid = {a: open(os.path.join(loading[a], "pid"), encoding="ascii").read() for a in (first, large, last)}
    assert pid[first] == pid[last] != pid[large]
    hold.unlink()
    for archive, image in ((first, "solv/first:1"), (large, "solv/large:1"), (last, "solv/last:1")):
        assert _wait(host, loading[archive], image).returncode == 0
    assert _loads(host)[2:] == [last]


def test_a_failed_load_is_reported_to_its_image_and_not_tried_again_in_the_background(host):
    bad = _archive(host, "bad.tar", "bad")
    loading = _load(host, (bad, ["solv/bad:1"]))
    failed = _wait(host, loading[bad], "solv/bad:1")
    assert failed.returncode == 1 and "invalid tar header" in failed.stdout
    assert _load(host, (bad, ["solv/bad:1"])) == loading  # image.yml loads it itself, which says what is wrong
    assert _loads(host) == [bad]


def test_a_load_whose_archive_lacks_the_image_or_whose_loader_died_is_waited_for_no_longer(host):
    other = _archive(host, "other.tar", "solv/other:1")
    loading = _load(host, (other, ["solv/wanted:1"]))
    assert _wait(host, loading[other], "solv/wanted:1").returncode == 1  # loaded, but not the image wanted
    gone = host["root"] / "images" / "loading" / "gone"
    gone.mkdir()
    (gone / "pid").write_text("999999999")
    assert _wait(host, str(gone), "solv/wanted:1").returncode == 125
    # Its pid now another process's (this test's): died as well, not waited for.
    (gone / "pid").write_text(str(os.getpid()))
    assert _wait(host, str(gone), "solv/wanted:1").returncode == 125


def test_a_dry_run_or_a_host_with_every_image_starts_no_load(host):
    new = _archive(host, "new.tar", "solv/new:1")
    assert _load(host, (new, ["solv/new:1"]), check=True) == {}
    assert _load(host, (_archive(host, "one.tar", "solv/one:1.0"), ["solv/one:1.0", "solv/one:latest"])) == {}
    assert _loads(host) == []


@pytest.fixture()
def saved_image(tmp_path):
    """(image, archive): a one-file image saved to a tar and removed from this machine's engine."""
    if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode != 0:
        pytest.skip("needs a Docker engine")
    # A tag of its own: another test run on the same engine (CI's beside a developer's) must not load it meanwhile.
    image, archive = f"solv-test/background-load:{os.getpid()}-{time.monotonic_ns()}", tmp_path / "background-load.tar"
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    subprocess.run(["docker", "import", "-", image], input=data.getvalue(), capture_output=True, check=True)
    subprocess.run(["docker", "save", "--output", str(archive), image], check=True)
    subprocess.run(["docker", "rmi", image], capture_output=True, check=True)
    yield image, archive
    subprocess.run(["docker", "rmi", image], capture_output=True, check=False)


@pytest.mark.docker
def test_with_this_machine_s_docker_an_archive_loads_in_the_background_and_its_wait_sees_the_image(
        tmp_path, saved_image):
    """The loader and image.yml's wait against a real engine: `docker load` of a saved image, then the image there."""
    image, archive = saved_image
    docker = shutil.which("docker")
    args = tmp_path / "args.json"
    args.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "root_dir": str(tmp_path / "root"), "systemd_dir": str(tmp_path), "docker": docker,
        "load": [{"archive": str(archive), "images": [image]}]}}))
    out = subprocess.run(command(LIBRARY / "solv_host_state.py", args), capture_output=True, text=True, check=True)
    loading = json.loads(out.stdout)["loading"]
    waited = subprocess.run([*_waiter(), loading[str(archive)], docker, image], capture_output=True, text=True,
                            timeout=120, check=False)
    assert waited.returncode == 0 and f"Loaded image: {image}" in waited.stdout


PLAY = """
- hosts: gateway
  gather_facts: false
  tasks:
    - name: The host read
      ansible.builtin.include_role: {name: solv_common, tasks_from: container_read.yml, rolespec_validate: false}
      vars: {solv_container_name: solv-caddy}
    - name: The loads the reading began
      ansible.builtin.debug: {var: solv_host_reading.loading}
    - name: The image present
      ansible.builtin.include_role: {name: solv_common, tasks_from: image.yml, rolespec_validate: false}
      vars: {solv_image: "{{ caddy_image }}:{{ caddy_image_tag }}", solv_image_archive: "{{ caddy_image_archive }}",
             solv_image_present: false}
"""


@pytest.mark.docker
def test_through_ansible_the_host_reading_starts_the_load_and_the_image_step_only_waits_for_it(tmp_path, saved_image):
    """The roles' wiring, run by ansible-playbook on this machine (connection local): with shared archives the
    host reading starts the load of the gateway's archive, and image.yml waits for it instead of loading."""
    image, archive = saved_image
    name, tag = image.rsplit(":", 1)
    hosts = {"gw": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "solv_image_archive_shared": True, "solv_root_dir": str(tmp_path / "root"),
        "solv_systemd_dir": str(tmp_path / "systemd"), "solv_docker_bin": shutil.which("docker"),
        "caddy_image": name, "caddy_image_tag": tag, "caddy_image_archive": str(archive)}}
    tasks = run_play(tmp_path, {"all": {"children": {"gateway": {"hosts": hosts}}}}, PLAY)
    results = {task: by_host["gw"] for task, by_host in tasks.items()}
    assert str(archive) in results["The loads the reading began"]["solv_host_reading.loading"]
    assert results[f"Image: wait for its load begun in the background | {image}"]["changed"] is True
    assert results[f"Image: docker load | {image}"].get("skipped") is True
    assert subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0
