"""Run playbooks through ansible-runner: events -> live progress per host -> summary table and exit code."""

from __future__ import annotations

import os
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from solv_provision import paths

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


@dataclass
class HostStats:
    ok: int = 0
    changed: int = 0
    failed: int = 0
    unreachable: int = 0
    skipped: int = 0
    ignored: int = 0
    task: str = ""
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Change:
    host: str
    task: str
    diff: list[dict[str, Any]]


@dataclass
class Failure:
    host: str
    task: str
    message: str
    unreachable: bool = False


@dataclass
class RunResult:
    mode: str
    rc: int
    artifacts: Path
    hosts: dict[str, HostStats] = field(default_factory=dict)
    changes: list[Change] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        if self.failures or self.rc != 0:
            return 1
        if self.mode == "check" and any(s.changed for s in self.hosts.values()):
            return 3
        return 0


def ansible_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for ansible-playbook: our ansible.cfg and roles, this Python's tools first on PATH."""
    root = paths.content_root()
    env = {
        "ANSIBLE_CONFIG": str(root / "ansible.cfg"),
        "ANSIBLE_ROLES_PATH": str(root / "roles"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
    }
    env.update(extra or {})
    return env


def _cmdline(mode: str, tags, extra_vars, forks, verbosity, vault_password_file) -> str:
    args: list[str] = []
    if mode == "check":
        args += ["--check", "--diff"]
    if tags:
        args += ["--tags", tags]
    for ev in extra_vars or []:
        args += ["-e", ev]
    if forks:
        args += ["--forks", str(forks)]
    if vault_password_file:
        args += ["--vault-password-file", str(Path(vault_password_file).expanduser().resolve())]
    if verbosity > 1:
        args.append("-" + "v" * (verbosity - 1))
    return shlex.join(args)


def run_playbook(playbook: str, inventories: list[str], *, mode: str = "apply", limit=None, tags=None,
                 extra_vars=None, forks=None, verbosity: int = 0, vault_password_file=None) -> RunResult:
    import ansible_runner

    from solv_provision.progress import Progress

    book = Path(playbook) if Path(playbook).is_absolute() else paths.playbooks_dir() / playbook
    if not book.is_file():
        raise FileNotFoundError(f"no playbook {book}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    private = paths.state_dir() / "runs" / f"{stamp}-{mode}"
    private.mkdir(parents=True, exist_ok=True)

    result = RunResult(mode=mode, rc=-1, artifacts=private / "artifacts")
    progress = Progress(result, verbose=verbosity > 0)
    with progress:
        runner = ansible_runner.run(
            private_data_dir=str(private),
            playbook=str(book),
            inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
            limit=limit,
            cmdline=_cmdline(mode, tags, extra_vars, forks, verbosity, vault_password_file),
            envvars=ansible_env(),
            quiet=verbosity == 0,
            event_handler=lambda event: _on_event(event, result, progress) or True,
            settings={"suppress_env_files": True},
        )
    result.rc = runner.rc
    if runner.status in ("failed", "error") and not result.failures and runner.rc != 0:
        result.failures.append(Failure("-", "-", f"ansible-playbook exited with {runner.rc} ({runner.status}); "
                                                  f"see {result.artifacts}"))
    progress.summary()
    return result


def _on_event(event: dict[str, Any], result: RunResult, progress) -> None:
    kind = event.get("event", "")
    data = event.get("event_data") or {}
    host = data.get("host")
    now = time.monotonic()
    if kind == "playbook_on_task_start":
        progress.task_started(data.get("task", ""))
        return
    if kind == "runner_on_start" and host:
        stats = result.hosts.setdefault(host, HostStats(started=now))
        stats.task = data.get("task", "")
        progress.refresh()
        return
    if kind not in _RESULT_EVENTS or not host:
        return
    stats = result.hosts.setdefault(host, HostStats(started=now))
    stats.finished = now
    res = data.get("res") or {}
    task = data.get("task", "")
    outcome = _RESULT_EVENTS[kind]
    if outcome == "failed" and data.get("ignore_errors"):
        stats.ignored += 1
        return
    setattr(stats, outcome, getattr(stats, outcome) + 1)
    if outcome in ("ok", "failed") and res.get("changed"):
        stats.changed += 1
        diff = res.get("diff") or []
        result.changes.append(Change(host, task, diff if isinstance(diff, list) else [diff]))
        progress.changed(host, task)
    if outcome in ("failed", "unreachable"):
        failure = Failure(host, task, _message(res), unreachable=outcome == "unreachable")
        result.failures.append(failure)
        progress.failed(failure)
    progress.refresh()


def _message(res: dict[str, Any]) -> str:
    if res.get("censored"):
        return res["censored"]
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not msg and res.get("results"):
        msg = next((r.get("msg") for r in res["results"] if isinstance(r, dict) and r.get("failed")), "")
    return " ".join(str(msg).split())[:400] or "failed (no message)"


def read_secret(inventories: list[str], host: str, name: str, *, vault_password_file=None,
                root_dir: str = "/opt/solv") -> str | None:
    """Slurp <root>/secrets/<name> from host. Artifacts go to a temporary folder that is removed."""
    import base64

    import ansible_runner

    if "/" in name or name.startswith("."):
        raise ValueError(f"not a secret name: {name!r}")
    cmd = ["--vault-password-file", vault_password_file] if vault_password_file else []
    with tempfile.TemporaryDirectory(prefix="solv-secret-") as private:
        found: dict[str, str] = {}

        def handler(event):
            res = (event.get("event_data") or {}).get("res") or {}
            if event.get("event") == "runner_on_ok" and "content" in res:
                found["value"] = base64.b64decode(res["content"]).decode("utf-8").strip()
            return False  # keep nothing on disk

        ansible_runner.run(
            private_data_dir=private,
            host_pattern=host,
            module="ansible.builtin.slurp",
            module_args=f"src={root_dir}/secrets/{name}",
            inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
            cmdline=shlex.join(cmd) if cmd else None,
            envvars=ansible_env(),
            quiet=True,
            event_handler=handler,
        )
        return found.get("value")
