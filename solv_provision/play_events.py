"""The events of solv-provision's plays, one JSON line each on a FIFO in the run's private folder.

ansible-runner's own output callback (awx_display) writes every event to a file of its own and, encoded, into the
output, which ansible-runner then reads back: about 1.1 ms an event in ansible-playbook's main process, which runs
the tasks one after another (516 events in the lab's no-op `apply`). solv_provision.held_play makes plugins/callback/
solv_events.py the output callback instead: Ansible's default output, and each event the CLI reads (a task
started, a host started it, a host's result) as one line here. ansible-runner still starts the play, keeps its
output and stops it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

EVENTS = "SOLV_EVENTS"  # the child's environment: the FIFO's path
CALLBACK_PLUGINS = "SOLV_CALLBACK_PLUGINS"  # ... and its callback folders
CALLBACK = "solv_events"
# Written by the CLI's end once the play is over: an empty line (no event is one), after a newline that ends a line
# the play may have left unfinished as it was stopped.
_END = b"\n\n"


class Events:
    """The CLI's end, made in the run's PRIVATE folder before the play starts and held open (O_RDWR) until
    close(): a thread hands each event to HANDLER and keeps its line in LOG (the run's artifacts)."""

    def __init__(self, private: Path, handler: Callable[[dict[str, Any]], Any], log: Path):
        self.path = Path(private) / "events"
        os.mkfifo(self.path, 0o600)
        self._fd: int | None = os.open(self.path, os.O_RDWR)  # not inherited by the child (PEP 446)
        self._handler, self._log = handler, log
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, name="play-events", daemon=True)
        self._thread.start()

    def environment(self) -> dict[str, str]:
        """The child's environment: the FIFO, and the callback folders it is to load (held_play puts them in place
        of ansible-runner's list, whose own callback would otherwise be imported, and then wrap all output)."""
        from solv_provision import paths

        folders = [str(paths.content_root() / "plugins" / "callback"), os.environ.get("ANSIBLE_CALLBACK_PLUGINS")]
        return {EVENTS: str(self.path), CALLBACK_PLUGINS: ":".join(filter(None, folders))}

    def _read(self) -> None:
        self._log.parent.mkdir(parents=True, exist_ok=True)
        log_fd = os.open(self._log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(os.dup(self._fd), "rb") as fifo, os.fdopen(log_fd, "wb") as log:
            for line in fifo:
                if line == b"\n":
                    return
                log.write(line)
                try:
                    event = json.loads(line)
                except ValueError:  # the end of a line the play wrote as it was stopped
                    continue
                if self._error is None:
                    try:
                        self._handler(event)
                    except BaseException as error:  # raised by close(), once the pipe is read to its end
                        self._error = error

    def close(self) -> None:
        """After the play: every line it wrote is handled, then the FIFO removed; a handler's error raised."""
        if self._fd is None:
            return
        os.write(self._fd, _END)
        self._thread.join()
        os.close(self._fd)
        self._fd = None
        self.path.unlink(missing_ok=True)
        if self._error is not None:
            raise self._error
