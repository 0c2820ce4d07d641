"""ansible-playbook started while solv-provision still reads and checks the inventory, held until it says go.

ansible-playbook spends its first 0.35 s importing Ansible, before it reads anything of the run; the CLI's reading
and check of the inventory take about as long (0.3-0.5 s). So the CLI starts `python -m solv_provision.held_play
ARGS` (Hold) before it reads the inventory: the child makes ansible-playbook's imports while a thread waits for a
word on a FIFO in the run's private folder. `go`: it runs ansible-playbook with ARGS, and reads only now what they
name (the inventory, a variables or limit file the CLI wrote meanwhile). Anything else, the CLI closing its end or
exiting included: it exits at once with HELD_BACK, having read no inventory and contacted no host.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from pathlib import Path

from solv_provision import jinja_cache, plugin_preload
from solv_provision.fast_exit import exit_now
from solv_provision.play_events import CALLBACK, CALLBACK_PLUGINS, EVENTS

HOLD = "SOLV_HOLD"  # the child's environment: the FIFO's path
HELD_BACK = 75  # the child's exit status when it was not let go (EX_TEMPFAIL)


class Hold:
    """The CLI's end, made in the run's PRIVATE folder before the child starts. The CLI keeps it open until the
    run ends: `go` waits in the pipe until the child reads it, and a CLI that dies closes it (the child exits)."""

    def __init__(self, private: Path):
        self.path = Path(private) / "hold"
        os.mkfifo(self.path, 0o600)
        self._fd: int | None = os.open(self.path, os.O_RDWR)  # not inherited by the child (PEP 446)
        self.released = False

    @staticmethod
    def cmdline(args: str) -> str:
        """ansible-runner's `cmdline` for the child, run as ansible-runner's `binary` (this interpreter)."""
        return shlex.join(["-m", __name__]) + " " + args

    def environment(self) -> dict[str, str]:
        return {HOLD: str(self.path)}

    def release(self) -> None:
        os.write(self._fd, b"go\n")
        self.released = True

    def close(self) -> None:
        """After the run; before it, the child held back."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.unlink(missing_ok=True)


def _word(path: str) -> str:
    """The CLI's word: '' when it closed its end (or exited) without one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # opens whether or not the CLI's end is still open
    except FileNotFoundError:  # the CLI held the play back, and removed the FIFO, before this opened it
        return ""
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as fifo:
        return fifo.readline().decode(errors="replace").strip()


class _Word(threading.Thread):
    """Reads the CLI's word beside the imports. Anything but `go` ends this process at once, mid-import: holding
    a play back costs the CLI no wait."""

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.path = path
        self.start()

    def run(self) -> None:
        if _word(self.path) != "go":
            os._exit(HELD_BACK)


def main() -> None:
    word = _Word(os.environ.pop(HOLD))
    if EVENTS in os.environ:  # the CLI reads the events on its FIFO: its callback, and not ansible-runner's at all
        os.environ["ANSIBLE_STDOUT_CALLBACK"] = CALLBACK
        os.environ["ANSIBLE_CALLBACK_PLUGINS"] = os.environ.pop(CALLBACK_PLUGINS)
    from ansible.cli import playbook  # ansible-playbook's own imports: most of its start

    jinja_cache.install(os.environ.pop(jinja_cache.ENV, ""))  # templates compiled in earlier runs, read back
    plugin_preload.install()  # filter and test plugins loaded here once, not in every task's worker

    word.join()  # `go`: any other word has ended the process
    sys.argv = ["ansible-playbook", *sys.argv[1:]]
    try:
        playbook.main()  # ends in sys.exit
    except SystemExit as done:
        exit_now(done.code)  # 0.15-0.2 s of ansible-playbook's run


if __name__ == "__main__":
    sys.exit(main())
