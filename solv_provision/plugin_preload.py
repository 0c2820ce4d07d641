"""Jinja filter and test plugins loaded in ansible-playbook's own process, not again in every task's worker.

ansible-core 2.19 finds a filter or test by name by first loading every filter (test) plugin file on its paths,
once per process, and forgets them whenever a role adds a plugin folder. The strategy asks for none in its own
process; each worker (one forked per task and host) asks, so each executes every plugin file again: in a no-op run
of 8 lab hosts a tenth of the controller's CPU went to running solv_rules.py, solv_routing.py and the other plugin
files once per worker. The held play (solv_provision.held_play) installs this: just before a worker is forked, the
loaders are filled in ansible-playbook's process where they are empty, so the worker, a copy of that process,
starts with them. It is the same function a worker would run, on the same loader state. Plain ansible-playbook
never loads this module.
"""

from __future__ import annotations

import functools


def install() -> bool:
    """Fill the filter and test loaders before each worker starts; False, and nothing changed, where this Ansible
    lacks the worker or the loaders' method."""
    try:
        from ansible.executor.process.worker import WorkerProcess
        from ansible.plugins.loader import filter_loader, test_loader
    except ImportError:
        return False
    loaders = (filter_loader, test_loader)
    if not all(callable(getattr(loader, "_ensure_non_collection_wrappers", None)) for loader in loaders):
        return False
    WorkerProcess.start = _after_loading(WorkerProcess.start, loaders)
    return True


def _after_loading(start, loaders):
    @functools.wraps(start)
    def start_with_plugins_loaded(self, *args, **kwargs):
        for loader in loaders:
            try:
                loader._ensure_non_collection_wrappers()  # returns at once while they are loaded
            except Exception:  # left to the worker, as without this module: none half-loaded
                loader._clear_caches()
        return start(self, *args, **kwargs)
    return start_with_plugins_loaded
