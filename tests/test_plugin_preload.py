"""Jinja filter and test plugins loaded in ansible-playbook's process before each worker starts
(solv_provision/plugin_preload.py): a play's workers find them loaded, and get the same results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import REPO

# ansible-playbook as the held play runs it: Ansible's imports, then the preload ("on") or not ("off").
_PLAYBOOK_PROCESS = textwrap.dedent("""
    import sys
    from ansible.cli import playbook
    from solv_provision import plugin_preload
    if sys.argv[1] == "on":
        assert plugin_preload.install()
    sys.argv = ["ansible-playbook", *sys.argv[2:]]
    playbook.main()
""")

# A filter plugin that notes each process that executes its file.
_COUNTED_FILTER = textwrap.dedent("""
    import os
    with open(os.environ["COUNTED_LOG"], "a") as log:
        log.write(f"{os.getpid()}\\n")

    class FilterModule:
        def filters(self):
            return {"counted_shout": lambda text: text.upper() + "!"}
""")

_PLAY = [{"hosts": "all", "gather_facts": False, "tasks": [
    {"name": f"task {i}", "ansible.builtin.debug": {"msg": "{{ inventory_hostname | counted_shout }}"}}
    for i in range(3)]}]


def _play(tmp_path, preload: str) -> tuple[list[str], list[str], int]:
    """(the task results' messages, the processes that executed the filter file, ansible-playbook's pid)."""
    (tmp_path / "filter_plugins").mkdir(exist_ok=True)
    (tmp_path / "filter_plugins" / "counted.py").write_text(_COUNTED_FILTER)
    (tmp_path / "play.yml").write_text(json.dumps(_PLAY))
    log = tmp_path / f"executed-{preload}.log"
    env = {**os.environ, "COUNTED_LOG": str(log), "PYTHONPATH": str(REPO), "ANSIBLE_STDOUT_CALLBACK": "json",
           "ANSIBLE_CONFIG": str(tmp_path / "none.cfg")}
    proc = subprocess.Popen([sys.executable, "-c", _PLAYBOOK_PROCESS, preload, "-i", "h1,h2,", "-c", "local",
                             str(tmp_path / "play.yml")], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    messages = [host["msg"] for play in json.loads(out)["plays"] for task in play["tasks"]
                for host in task["hosts"].values()]
    return messages, log.read_text().split(), proc.pid


def test_the_workers_find_the_filters_loaded_and_get_the_same_results(tmp_path):
    without, executed_without, _ = _play(tmp_path, "off")
    with_preload, executed, pid = _play(tmp_path, "on")
    assert with_preload == without == ["H1!", "H2!"] * 3
    assert len(set(executed_without)) == 6  # each of the 6 workers executed the plugin file again
    assert executed == [str(pid)]  # once, in ansible-playbook's own process


def test_it_declines_an_ansible_whose_loaders_lack_the_method(monkeypatch):
    from ansible.executor.process.worker import WorkerProcess
    from ansible.plugins.loader import Jinja2Loader

    from solv_provision import plugin_preload

    start = WorkerProcess.start
    monkeypatch.setattr(WorkerProcess, "start", start)  # put back after the test, whatever install did
    monkeypatch.delattr(Jinja2Loader, "_ensure_non_collection_wrappers")
    assert plugin_preload.install() is False
    assert WorkerProcess.start is start


def test_a_loader_that_fails_is_left_empty_for_the_worker():
    from solv_provision import plugin_preload

    class Loader:
        def __init__(self, fails):
            self.fails, self.cleared, self.loaded = fails, False, False

        def _ensure_non_collection_wrappers(self):
            self.loaded = True
            if self.fails:
                raise RuntimeError("a plugin file that cannot be read")

        def _clear_caches(self):
            self.cleared = True

    started = []
    loaders = (Loader(fails=True), Loader(fails=False))
    start = plugin_preload._after_loading(lambda worker: started.append(worker), loaders)
    start("worker")
    assert started == ["worker"]
    assert [(loader.loaded, loader.cleared) for loader in loaders] == [(True, True), (True, False)]
