"""solv_common's container spec: the environment reaches the program through a file, never Docker's config."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import time
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("solv_common_filters", ROOT / "roles/solv_common/filter_plugins/solv_common.py")
filters = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(filters)

HARD_VALUES = {
    "QUOTE": "it's",
    "DOLLAR": "$HOME and `id` and $(id)",
    "SPACES": "  two  spaces  ",
    "BACKSLASH": "a\\b\\\\c",
    "EQUALS": "k=v;x",
    "EMPTY": "",
    "GLOB": "*",
}


def params(**over):
    base = {
        "name": "solv-demo", "image": "demo:1", "env": {"SECRET_TOKEN": "s3cr3t-value"}, "root_dir": "/opt/solv",
        "systemd_dir": "/etc/systemd/system", "start_timeout": 60, "stop_timeout": 10,
        "image_config": {"entrypoint": ["/entry.sh"], "cmd": ["serve", "--port", "80"]},
    }
    base.update(over)
    return base


def test_env_file_gives_the_program_exactly_the_values(tmp_path):
    env_file = tmp_path / "env"
    env_file.write_text(filters.solv_env_file(HARD_VALUES))
    # What the container's wrapper does, then the environment the program sees.
    script = filters.ENV_WRAPPER.replace(filters.ENV_IN_CONTAINER, str(env_file))
    out = subprocess.run(
        ["/bin/sh", "-c", script, "solv-env", "python3", "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    ).stdout
    seen = __import__("json").loads(out)
    assert {k: seen.get(k) for k in HARD_VALUES} == HARD_VALUES


def test_env_file_refuses_what_it_cannot_hold():
    with pytest.raises(AnsibleFilterError, match="the value of X contains a newline"):
        filters.solv_env_file({"X": "two\nlines"})
    with pytest.raises(AnsibleFilterError, match="invalid variable name"):
        filters.solv_env_file({"1X": "v"})


def test_no_environment_value_in_the_docker_run_arguments():
    spec = filters.solv_container_spec(params())
    args = spec["run_args"]
    assert not any("s3cr3t-value" in a for a in args)
    assert "--env-file" not in args and "--env" not in args and "-e" not in args
    assert ["--volume", "/opt/solv/demo/env:/run/solv/env:ro"] in [args[i:i + 2] for i in range(len(args))]
    assert args[args.index("--entrypoint") + 1] == "/bin/sh"
    tail = args[args.index("demo:1"):]
    assert tail == ["demo:1", "-c", filters.ENV_WRAPPER, "solv-env", "/entry.sh", "serve", "--port", "80"]


def test_docker_s_init_is_pid_1_except_in_the_host_s_pid_namespace():
    args = filters.solv_container_spec(params())["run_args"]
    assert "--init" in args[:args.index("--entrypoint")]
    host_pid = filters.solv_container_spec(params(docker_args=["--pid=host"]))["run_args"]
    assert "--init" not in host_pid


@pytest.mark.docker
def test_a_stop_reaches_a_program_that_has_no_signal_handler(tmp_path):
    """Python without a SIGTERM handler, as a service still importing: as PID 1 it would ignore the stop's SIGTERM
    and docker stop would wait its whole timeout; under Docker's init it ends at once."""
    image = "solv-lab/base:debian12"
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode != 0:
        pytest.skip(f"needs Docker and {image} (solv-provision lab images --only base)")
    name = f"solv-test-init-{tmp_path.name[-12:]}"
    spec = filters.solv_container_spec(params(name=name, image=image, root_dir=str(tmp_path), entrypoint="python3",
                                              command=["-c", "import time; time.sleep(120)"]))
    env = spec["files"][0]
    Path(env["path"]).parent.mkdir(parents=True)
    Path(env["path"]).write_text(env["content"])
    subprocess.run(["docker", "run", "-d", *spec["run_args"]], check=True, capture_output=True)
    try:
        start = time.monotonic()
        subprocess.run(["docker", "stop", "--time", "30", name], check=True, capture_output=True)
        assert time.monotonic() - start < 10
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, check=False)


@pytest.mark.parametrize(
    ("entrypoint", "command", "config", "program"),
    [
        ("", [], {"entrypoint": ["vllm", "serve"], "cmd": None}, ["vllm", "serve"]),
        ("", ["--model", "m"], {"entrypoint": ["vllm", "serve"], "cmd": ["--help"]}, ["vllm", "serve", "--model", "m"]),
        ("", [], {"entrypoint": None, "cmd": ["bash", "start.sh"]}, ["bash", "start.sh"]),
        ("", ["--port", "1"], {"entrypoint": None, "cmd": ["bash", "start.sh"]}, ["--port", "1"]),
        ("/own", [], {"entrypoint": ["/img"], "cmd": ["dropped"]}, ["/own"]),  # as docker run --entrypoint
    ],
)
def test_program_is_what_docker_would_run(entrypoint, command, config, program):
    assert filters.solv_container_program("i:1", entrypoint, command, config) == program


def test_program_unknown_image_is_named_not_guessed():
    assert filters.solv_container_program("i:1", "", ["--x"], None) == ["<entrypoint of i:1>", "--x"]
    with pytest.raises(AnsibleFilterError, match="i:1 has no entrypoint or command"):
        filters.solv_container_program("i:1", "", [], {"entrypoint": None, "cmd": None})


def test_a_user_owns_its_env_file_and_the_image_change_changes_the_hash():
    spec = filters.solv_container_spec(params(user="977:977"))
    env = next(f for f in spec["files"] if f["path"].endswith("/env"))
    assert (env["owner"], env["mode"]) == ("977", "0600")
    assert spec["run_args"][spec["run_args"].index("--user") + 1] == "977:977"
    other = filters.solv_container_spec(params(image_config={"entrypoint": ["/other"], "cmd": None}))
    assert other["sha"] != filters.solv_container_spec(params())["sha"]


def test_pending_files_compares_numeric_owners_by_id():
    content = "x"
    sha1 = __import__("hashlib").sha1(content.encode()).hexdigest()
    files = [{"path": "/e", "content": content, "mode": "0600", "owner": "977"}]
    seen = {"exists": True, "isdir": False, "checksum": sha1, "mode": "0600", "owner": "systemd-x", "uid": 977}
    assert filters.solv_pending_files(files, {"/e": seen}) == []
    assert filters.solv_pending_files(files, {"/e": dict(seen, uid=0)}) == files


def test_render_gives_the_hash_the_host_s_own_files_give():
    """`render` writes under an output folder (out/<host>/opt/solv/...): the spec hash, shown in the unit and set
    as the container's label, leaves that folder out, so it is what `apply` gives that host, on every render."""
    out = "/tmp/solv-render-x1y2/out/gpu-1"

    def spec(prefix, render_prefix=""):
        return filters.solv_container_spec(params(
            root_dir=f"{prefix}/opt/solv", systemd_dir=f"{prefix}/etc/systemd/system", render_prefix=render_prefix,
            volumes=[f"{prefix}/opt/solv/demo/data:/data"],
            files=[{"name": "config.yaml", "content": f"data: {prefix}/opt/solv/demo/data\n"}]))

    host = spec("")
    assert spec(out, render_prefix=out)["sha"] == host["sha"]
    assert spec("/tmp/solv-render-other/out/gpu-1", render_prefix="/tmp/solv-render-other/out/gpu-1")["sha"] == host["sha"]
    assert spec(out)["sha"] != host["sha"]  # without it, the folder would be in the hash


def test_the_unit_runs_exactly_the_spec_s_docker_run_arguments():
    """The unit is rendered by solv_unit_file (the template compiled once per process, not per container): its
    ExecStart, unquoted as systemd does, is `docker run` with the spec's arguments, hard values included."""
    spec = filters.solv_container_spec(params(command=["--say", *HARD_VALUES.values(), "100%"]))
    unit = filters.solv_unit_file(spec, "/usr/bin/docker", 5)
    assert unit.startswith("#\n# Ansible managed\n#\n# SOLV container solv-demo, image demo:1.\n") and unit.endswith("\n")
    lines = unit.replace("\\\n", " ").splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    # systemd's unquoting of these words: shlex's, with %% and $$ halved.
    argv = [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(exec_start.removeprefix("ExecStart="))]
    assert argv == ["/usr/bin/docker", "run", *spec["run_args"]]
    assert "RestartSec=5" in lines and "ExecStartPre=-/usr/bin/docker rm -f solv-demo" in lines
    assert f"# The running container carries the label solv.spec={spec['sha']}: the hash of this" in lines



def _host_as_wanted(wanted):
    """What the host's reading would say of a container that runs exactly `wanted` (solv_container_wanted)."""
    spec = wanted["container"]
    paths = {d["path"]: {"exists": True, "isdir": True, "mode": d["mode"], "owner": "root", "group": "root"}
             for d in spec["dirs"]}
    paths.update({f["path"]: {"exists": True, "isdir": False, "checksum": filters._sha1(f["content"]),
                              "mode": f["mode"], "owner": f.get("owner", "root")} for f in wanted["files"]})
    return {"paths": paths, "image_id": "sha256:1", "image_config": params()["image_config"], "network_exists": True,
            "container": {"exists": True, "running": True, "image_id": "sha256:1", "labels": {"solv.spec": spec["sha"]}},
            "unit": {"load_state": "loaded", "active_state": "active", "unit_file_state": "enabled",
                     "need_daemon_reload": False}}


def test_wanted_state_in_sync_and_a_changed_health_check_written_without_a_restart():
    """container_files.yml's two controller steps: solv_container_prepare (the paths, known before the image's
    program) and solv_container_wanted (spec, files, state). A host running the wanted state is in sync with
    nothing to write; a changed health check is written to the gate and restarts nothing."""
    ctx = {"stage": False, "check_mode": False, "images_present": [], "networks_present": []}
    base = {k: v for k, v in params(network="solv").items() if k != "image_config"}
    prepared = filters.solv_container_prepare(base, None)
    assert prepared["probe"] is None
    gate = "/opt/solv/gates/solv-demo.json"
    assert prepared["paths"][-2:] == ["/etc/systemd/system/solv-demo.service", gate]
    checks = [{"url": "http://{container_address}:80/health"}]

    def wanted(probe, checks=checks):
        return filters.solv_container_wanted({**prepared, "probe": probe}, checks, ["/opt/solv/ca.crt"],
                                             "/usr/bin/docker", 5, ctx)

    assert wanted(None)["state"]["writes"]
    image_only = {"paths": {}, "image_id": "sha256:1", "image_config": params()["image_config"], "network_exists": True,
                  "container": {"exists": False, "running": False, "image_id": "", "labels": {}}, "unit": {}}
    first = wanted(image_only)
    assert first["state"]["writes"] and not first["state"]["in_sync"]
    files = {f["path"]: f for f in first["files"]}
    assert files["/etc/systemd/system/solv-demo.service"]["content"] == filters.solv_unit_file(
        first["container"], "/usr/bin/docker", 5)
    recorded = __import__("json").loads(files[gate]["content"])
    assert recorded["checks"] == checks and gate not in recorded["paths"]
    assert recorded["paths"] == [p for p in prepared["paths"] if p != gate] + ["/opt/solv/ca.crt"]

    host = _host_as_wanted(first)
    again = wanted(host)
    assert again["container"]["sha"] == first["container"]["sha"]
    assert again["state"]["in_sync"] and not again["state"]["writes"]
    changed = wanted(host, checks=[{"url": "http://{container_address}:80/ready"}])
    assert changed["state"]["in_sync"] and changed["state"]["writes"]
    assert changed["container"]["sha"] == first["container"]["sha"]


def test_the_plan_waits_for_the_image_s_program_and_keeps_every_container_s_state():
    """solv_container_plan: without a reading that covers the container there is no wanted state yet
    (container_files.yml probes it alone, then plans again with the probe); the states of the host's containers
    are carried from plan to plan, so container_run.yml finds each by name."""
    settings = {"checks": [], "watch_paths": [], "docker_bin": "/usr/bin/docker", "restart_sec": 5, "render": False,
                "stage": False, "check_mode": False, "images_present": [], "networks_present": []}
    base = {k: v for k, v in params(network="solv").items() if k != "image_config"}
    first = filters.solv_container_plan(base, None, settings)
    assert first["wanted"] is None and first["containers"] == {}
    image_only = {"paths": {}, "image_id": "sha256:1", "image_config": params()["image_config"], "network_exists": True,
                  "container": {"exists": False, "running": False, "image_id": "", "labels": {}}, "unit": {}}
    probed = filters.solv_container_plan(first["params"], None, settings, first, probe=image_only)
    assert probed["wanted"]["probe"] == image_only and list(probed["containers"]) == ["solv-demo"]
    other = filters.solv_container_plan({**base, "name": "solv-other"}, None, {**settings, "render": True}, probed)
    assert other["wanted"] is not None and sorted(other["containers"]) == ["solv-demo", "solv-other"]
    assert other["containers"]["solv-demo"] == probed["wanted"]["state"]


def test_container_run_is_needed_only_for_a_planned_container_out_of_sync():
    """solv_container_needs_run, the test on each role's include of container_run.yml and in the file itself."""
    plan = {"containers": {"solv-a": {"in_sync": True}, "solv-b": {"in_sync": False}}}
    assert filters.solv_container_needs_run(plan, "solv-a") is False
    assert filters.solv_container_needs_run(plan, "solv-b") is True
    for no_plan in (None, {}, plan):
        with pytest.raises(AnsibleFilterError, match="container_files.yml for solv-c before container_run.yml"):
            filters.solv_container_needs_run(no_plan, "solv-c")



def test_the_containers_to_run_are_those_out_of_sync_in_order():
    """solv_containers_to_run: the loop of a role's include of container_run.yml (names, or instances by name under
    a prefix); empty in a run that changes nothing, and the same error as solv_container_needs_run for a container
    the play did not plan."""
    plan = {"containers": {"solv-a": {"in_sync": True}, "solv-b": {"in_sync": False}, "solv-c": {"in_sync": False}}}
    assert filters.solv_containers_to_run(plan, ["solv-c", "solv-a", "solv-b"]) == ["solv-c", "solv-b"]
    instances = [{"name": "a", "port": 1}, {"name": "b", "port": 2}]
    assert filters.solv_containers_to_run(plan, instances, "solv-") == [{"name": "b", "port": 2}]
    assert filters.solv_containers_to_run(plan, ["solv-a"]) == []
    with pytest.raises(AnsibleFilterError, match="container_files.yml for solv-d before container_run.yml"):
        filters.solv_containers_to_run(plan, [{"name": "d"}], "solv-")

def test_the_units_to_prune_come_from_the_reading_where_it_lists_them():
    """solv_units_to_prune: what containers_prune.yml removes, and whether a role includes it at all ([]: skipped)."""
    reading = {"usable": True, "unit_files": ["solv-litellm", "solv-litellm-2", "solv-litellm-3", "solv-vllm-a"]}
    assert filters.solv_units_to_prune(reading, "solv-litellm-", ["2"]) == ["solv-litellm-3"]
    assert filters.solv_units_to_prune(reading, "solv-litellm-", ["2", "3"]) == []
    assert filters.solv_units_to_prune(reading, "solv-vllm-", []) == ["solv-vllm-a"]
    # Not known: no reading, one not usable (the engine missing), a family the reading does not list.
    assert filters.solv_units_to_prune(None, "solv-vllm-", []) is None
    assert filters.solv_units_to_prune({**reading, "usable": False}, "solv-vllm-", []) is None
    assert filters.solv_units_to_prune(reading, "other-", []) is None
    # Then from the unit files containers_prune.yml found on the host (the `find` module's files).
    found = [{"path": "/etc/systemd/system/other-1.service"}, {"path": "/etc/systemd/system/other-2.service"}]
    assert filters.solv_units_to_prune(None, "other-", ["2"], found) == ["other-1"]
    assert filters.solv_units_to_prune({**reading, "usable": False}, "solv-vllm-", ["a"], []) == []
