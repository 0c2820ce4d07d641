"""Run playbooks through ansible-runner: events -> live progress per host -> summary table and exit code."""

from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from solv_provision import jinja_cache, paths

_RESULT_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}


class UsageError(ValueError):
    """The request cannot run as given (exit 2); nothing was contacted."""


class SecretReadError(RuntimeError):
    """The host could not be reached or did not give the secret (exit 1)."""


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
    message: str  # one line, at most 400 characters (the live view)
    unreachable: bool = False
    detail: str = ""  # the whole message, lines kept (the summary: a rollback's reason and the log lines)


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


def brief(names, shown: int = 5) -> str:
    """'a, b, c' for a few names; 'a, b, c, d, e, … and 95 more' for many (messages stay one readable line)."""
    names = list(names)
    if len(names) <= shown:
        return ", ".join(names) or "-"
    return ", ".join(names[:shown]) + f", … and {len(names) - shown} more"


# Playbooks in playbooks/ that `apply`/`check` may run (render.yml belongs to `solv-provision render`).
# Playbooks a verb of their own runs (render, status, backup, restore), never apply/check.
_INTERNAL_PLAYBOOKS = {"render.yml": "render", "status.yml": "status", "backup.yml": "backup", "restore.yml": "restore"}


def available_playbooks() -> list[str]:
    return sorted(p.name for p in paths.playbooks_dir().glob("*.yml") if p.name not in _INTERNAL_PLAYBOOKS)


def resolve_playbook(name: str) -> Path:
    """A playbook from playbooks/ by name, or a path to a playbook file; UsageError otherwise."""
    if name in available_playbooks():
        return paths.playbooks_dir() / name
    if name in _INTERNAL_PLAYBOOKS:
        raise UsageError(f"{name} is run by `solv-provision {_INTERNAL_PLAYBOOKS[name]}`, not by apply/check; "
                         f"available: {', '.join(available_playbooks())}")
    given = Path(name).expanduser()
    if (given.is_absolute() or len(given.parts) > 1) and given.is_file():
        return given.resolve()
    raise UsageError(f"no playbook {name}; available: {', '.join(available_playbooks())} "
                     "(or a path to a playbook file)")


def check_extra_vars(extra_vars) -> None:
    """-e @FILE must name a file that exists (ansible-playbook would stop on it after starting)."""
    for ev in extra_vars or []:
        if ev.startswith("@") and not Path(ev[1:]).expanduser().is_file():
            raise UsageError(f"-e {ev}: no such file {ev[1:]}")


_LOCALHOST = {"localhost", "127.0.0.1", "::1"}  # Ansible's implicit localhost
_SUBSCRIPT = re.compile(r"\[-?\d*(?:[:-]-?\d*)?\]$")  # group[0], group[1:3]


def check_limit(limit: str | None, *, hosts, groups) -> None:
    """Every term of --limit must match a host or group (Ansible only warns and skips a typo); UsageError."""
    from ansible.inventory.manager import split_host_pattern

    names = [*groups, *hosts, *_LOCALHOST]
    unmatched = [term for term in split_host_pattern(limit or "") if not _limit_term_matches(term, names)]
    if unmatched:
        raise UsageError(f"--limit {limit}: {', '.join(unmatched)} matches no host or group of the inventory; "
                         f"groups: {brief(sorted(groups))}; hosts: {brief(sorted(hosts))}")


def _limit_term_matches(term: str, names: list[str]) -> bool:
    term = term.lstrip("!&")
    if term.startswith("@"):
        return Path(term[1:]).expanduser().is_file()
    if term.startswith("~"):
        try:
            pattern = re.compile(term[1:])
        except re.error:
            return False
    else:
        pattern = re.compile(fnmatch.translate(_SUBSCRIPT.sub("", term)))
    return any(pattern.match(name) for name in names)


def _cmdline(*, mode: str, tags, extra_vars, forks, verbosity, vault_password_file) -> str:
    args: list[str] = []
    if mode == "check":
        args += ["--check", "--diff"]
    if tags:
        args += ["--tags", tags]
    for ev in extra_vars or []:  # @FILE absolute: ansible-playbook runs in the artifacts folder
        args += ["-e", f"@{Path(ev[1:]).expanduser().resolve()}" if ev.startswith("@") else ev]
    if forks:
        args += ["--forks", str(forks)]
    if vault_password_file:
        args += ["--vault-password-file", str(Path(vault_password_file).expanduser().resolve())]
    if verbosity > 1:
        args.append("-" + "v" * (verbosity - 1))
    return shlex.join(args)


def run_playbook(playbook: str, inventories: list[str], *, inv=None, **options) -> RunResult:
    """Run PLAYBOOK (held_playbook's options); INV, the inventory the CLI loaded from INVENTORIES, is handed over."""
    with held_playbook(playbook, inventories, **options) as held:
        return held.run(inv)


@contextlib.contextmanager
def held_playbook(playbook: str, inventories: list[str], *, mode: str = "apply", limit=None, tags=None,
                  extra_vars=None, forks=None, verbosity: int = 0, vault_password_file=None, late_vars: bool = False):
    """ansible-playbook started now and held (solv_provision.held_play) while the body reads and checks the
    inventory, then runs it: `held.run(inv)`. A body that leaves without running it (a problem found) holds it
    back: it has read nothing and contacted no host, and its run folder is removed. `late_vars`: run() takes extra
    variables made after the inventory was read (a file named on the command line, written before the play goes)."""
    book = resolve_playbook(playbook)
    private = paths.state_dir() / "runs" / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{mode}"
    private.mkdir(parents=True, exist_ok=True)
    cmdline = _cmdline(mode=mode, tags=tags, extra_vars=extra_vars, forks=forks, verbosity=verbosity,
                       vault_password_file=vault_password_file)
    late = private / "late-vars.json" if late_vars else None
    held = _HeldRun(private, RunResult(mode=mode, rc=-1, artifacts=private / "artifacts"), verbosity > 0,
                    extra_vars or [], late)
    try:
        with Held(private, playbook=book, inventories=inventories, limit=limit,
                  args=cmdline + (f" -e {shlex.quote('@' + str(late))}" if late else ""), quiet=verbosity == 0,
                  on_event=held.event, settings={"suppress_env_files": True}) as held.started:
            yield held
    finally:
        if held.started is None or not held.started.released:
            shutil.rmtree(private, ignore_errors=True)


class _HeldRun:
    """held_playbook's handle: the events of the run into its result and live progress."""

    def __init__(self, private: Path, result: RunResult, verbose: bool, extra_vars: list[str], late: Path | None):
        from solv_provision.progress import Progress

        self.private, self.result, self.extra_vars, self.late = private, result, extra_vars, late
        self.progress = Progress(result, verbose=verbose)
        self.started: Held | None = None

    def event(self, event: dict[str, Any]) -> None:
        handle_event(event, self.result, self.progress)

    def run(self, inv, late_vars: dict[str, Any] | None = None) -> RunResult:
        """Let the play go with INV handed over (and LATE_VARS as extra variables), wait for it; the result."""
        from solv_provision import handover

        extra = list(self.extra_vars)
        if self.late:
            extra.append(json.dumps(late_vars or {}))
            handover.write_private(self.late, extra[-1])
        handover.write(self.private, inv, extra)
        with self.progress:
            rc, status = self.started.release_and_wait()
        handover.remove(self.private)
        result = self.result
        result.rc = rc
        if rc != 0 and not result.failures:
            result.failures.append(Failure("-", "-", f"ansible-playbook exited with {rc} ({status}); "
                                                      f"see {result.artifacts}"))
        self.progress.summary()
        return result


class Held:
    """ansible-runner's run of ansible-playbook, started held in PRIVATE (solv_provision.held_play), the
    inventory's handover (solv_provision.handover) in its environment, each of its events handed to ON_EVENT
    (solv_provision.play_events). As a context manager: on leaving, a run not let go is held back, and the play
    is waited for (Ctrl-C stops it)."""

    def __init__(self, private: Path, *, playbook: Path, inventories: list[str], limit: str | None, args: str,
                 on_event: Callable[[dict[str, Any]], Any] | None = None, settings: dict | None = None,
                 **runner_options):
        import ansible_runner

        from solv_provision import handover
        from solv_provision.held_play import Hold
        from solv_provision.play_events import Events

        self.hold, self.events = Hold(private), None
        self.stop = threading.Event()
        try:
            self.events = Events(private, on_event or (lambda event: None),
                                 log=Path(private) / "artifacts" / "events.jsonl")
            self.thread, self.run = ansible_runner.run_async(
                private_data_dir=str(private),
                binary=sys.executable,
                cmdline=self.hold.cmdline(f"{args} {shlex.quote(str(playbook))}"),
                inventory=[str(Path(i).expanduser().resolve()) for i in inventories],
                limit=limit,
                envvars=ansible_env(handover.environment(private) | self.hold.environment()
                                    | self.events.environment() | jinja_cache.environment()),
                cancel_callback=self.stop.is_set,
                event_handler=lambda event: False,  # its events are lines of the output (the stdout artifact has it)
                settings={"pexpect_timeout": 0.2, **(settings or {})},  # how soon a stop is seen in a quiet play
                **runner_options,
            )
        except BaseException:
            self.hold.close()
            if self.events is not None:
                self.events.close()
            raise

    @property
    def released(self) -> bool:
        return self.hold.released

    def release_and_wait(self, meanwhile: Callable[[], None] | None = None) -> tuple[int, str]:
        """Let the play go and wait for it: (its exit status, ansible-runner's status). MEANWHILE runs beside the
        play; whatever it raises stops the play and is raised once the play has stopped."""
        self.hold.release()
        try:
            if meanwhile is not None:
                meanwhile()
        except BaseException:
            self.stop.set()
            raise
        finally:
            self.wait()
        return self.run.rc, self.run.status

    def wait(self) -> None:
        """Wait for the play's thread, then for its events to be handled; Ctrl-C stops the play (then raised once
        it has stopped)."""
        try:
            self.thread.join()
        except KeyboardInterrupt:
            self.stop.set()
            self.thread.join()
            raise
        finally:
            self.events.close()

    def __enter__(self) -> Held:
        return self

    def __exit__(self, *exc) -> None:
        self.hold.close()  # a play not let go exits now
        self.wait()


def output_tail(run) -> str:
    """The last lines of an ansible-runner run's output, on one line (for a reason when no event said why)."""
    try:
        text = run.stdout.read()
    except (OSError, AttributeError):
        return "no output"
    lines = [line for line in text.splitlines() if line.strip()]
    return " ".join(" ".join(lines[-5:]).split())[:600] or "no output"


def handle_event(event: dict[str, Any], result: RunResult, progress) -> None:
    """One ansible-runner event: update the host's counters and tell progress what happened."""
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
        result.changes.append(Change(host, task, _diffs(res)))
        progress.changed(host, task)
    if outcome in ("failed", "unreachable"):
        failure = Failure(host=host, task=task, message=result_message(res), unreachable=outcome == "unreachable",
                          detail=result_message(res, whole=True))
        result.failures.append(failure)
        progress.failed(failure)
    progress.refresh()


def _diffs(res: dict[str, Any]) -> list[Any]:
    """A result's diffs: its own, and those of its changed loop items (a looped copy has them per file)."""
    found: list[Any] = []
    items = [r for r in res.get("results") or [] if isinstance(r, dict) and r.get("changed")]
    for r in [res, *items]:
        diff = r.get("diff") or []
        found += diff if isinstance(diff, list) else [diff]
    return found


def result_message(res: dict[str, Any], whole: bool = False) -> str:
    """A task result's message on one line (at most 400 characters), or `whole`: its lines kept (at most 6000
    characters, the end kept: a failure quotes the container's last log lines there)."""
    if res.get("censored"):
        return res["censored"]
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    if not msg and res.get("results"):
        msg = next((r.get("msg") for r in res["results"] if isinstance(r, dict) and r.get("failed")), "")
    if whole:
        text = "\n".join(line.rstrip() for line in str(msg).strip().splitlines())
        return (text if len(text) <= 6000 else text[:1000] + "\n[...]\n" + text[-5000:]) or "failed (no message)"
    return " ".join(str(msg).split())[:400] or "failed (no message)"


_SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_secret_name(name: str) -> None:
    """A secret is one file in <root>/secrets/: a plain file name (UsageError otherwise)."""
    if not _SECRET_NAME.match(name):
        raise UsageError(f"not a secret name: {name!r} (letters, digits, '_', '.', '-'; e.g. litellm_master_key)")


def read_secret(*, inventories: list[str], host: str, name: str, vault_password_file=None,
                root_dir: str = "/opt/solv") -> str | None:
    """Slurp <root>/secrets/<name> from host; None when the host has no such secret.

    SecretReadError when the host is unreachable or the read fails otherwise. Artifacts go to a temporary
    folder that is removed.
    """
    import base64

    import ansible_runner

    check_secret_name(name)
    cmd = []
    if vault_password_file:
        cmd = ["--vault-password-file", str(Path(vault_password_file).expanduser().resolve())]
    with tempfile.TemporaryDirectory(prefix="solv-secret-") as private:
        found: dict[str, str] = {}

        def handler(event):
            kind = event.get("event")
            res = (event.get("event_data") or {}).get("res") or {}
            if kind == "runner_on_ok" and "content" in res:
                found["value"] = base64.b64decode(res["content"]).decode("utf-8").strip()
            elif kind == "runner_on_unreachable":
                found["error"] = f"UNREACHABLE: {result_message(res)}"
            elif kind == "runner_on_failed" and "not found" not in result_message(res):  # a missing file is None
                found["error"] = result_message(res)
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
    if "error" in found:
        raise SecretReadError(f"host {host}: {found['error']}")
    return found.get("value")
