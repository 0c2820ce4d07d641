"""What the operator sees while a play runs and after: a live table on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table


class Progress:
    def __init__(self, result, verbose: bool = False):
        self.result = result
        self.console = Console(stderr=True)
        self.live_mode = self.console.is_terminal and not verbose
        self.live: Live | None = None
        self.started = time.monotonic()
        self.current_task = ""

    # --- context: the live view exists only while the play runs ---------------------------------------------
    def __enter__(self):
        if self.live_mode:
            self.live = Live(self._table(live=True), console=self.console, refresh_per_second=4, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)
            self.live = None
        return False

    # --- events -------------------------------------------------------------------------------------------
    def task_started(self, task: str) -> None:
        task = _one_line(task)
        self.current_task = task
        if not self.live_mode:
            self.console.print(f"[dim]{self._elapsed()}[/] TASK {escape(task)}", highlight=False, soft_wrap=True)
        self.refresh()

    def changed(self, host: str, task: str) -> None:
        self._line(f"[yellow]changed[/] {escape(host)}: {escape(_one_line(task))}")

    def failed(self, failure) -> None:
        self._line(f"[bold red]{_kind(failure)}[/] {escape(failure.host)}: {escape(_one_line(failure.task))}: "
                   f"{escape(failure.message)}")

    def refresh(self) -> None:
        if self.live:
            self.live.update(self._table(live=True))

    # --- output -------------------------------------------------------------------------------------------
    def summary(self) -> None:
        r = self.result
        if r.mode == "check":
            self._print_changes()
        self.console.print(self._table(live=False))
        self.console.print(f"artifacts: {r.artifacts}", highlight=False, soft_wrap=True)
        code = r.exit_code
        if code == 1:
            self.console.print(self._reason(), highlight=False, soft_wrap=True)
        elif code == 3:
            n = sum(s.changed for s in r.hosts.values())
            self.console.print(f"[yellow]DRIFT[/]: {n} change(s) pending; nothing was changed (check mode)")
        elif r.mode == "check":
            self.console.print("[green]NO DRIFT[/]: every host matches the inventory")
        else:
            self.console.print(f"[green]OK[/]: {len(r.hosts)} host(s) in {self._elapsed()}")

    def _reason(self) -> str:
        """One line: UNREACHABLE or FAILED, the first host and task, its message, how many more failures."""
        failures = self.result.failures
        if not failures:
            return f"[bold red]FAILED[/]: ansible-playbook exited with {self.result.rc}"
        first = failures[0]
        where = first.host + (f" at task '{_one_line(first.task)}'" if first.task != "-" else "")
        more = f" (+{len(failures) - 1} more failure(s) above)" if len(failures) > 1 else ""
        return f"[bold red]{_kind(first)}[/]: {escape(where)}: {escape(first.detail or first.message)}{more}"

    def _print_changes(self) -> None:
        for change in self.result.changes:
            self.console.print(f"[yellow]would change[/] {escape(change.host)}: {escape(_one_line(change.task))}",
                               highlight=False, soft_wrap=True)
            for d in change.diff:
                if not isinstance(d, dict):
                    continue
                if d.get("prepared"):
                    self.console.print(str(d["prepared"]), highlight=False, markup=False)
                elif "before" in d or "after" in d:
                    self._unified(d)

    def _unified(self, d: dict) -> None:
        import difflib

        before = str(d.get("before", "")).splitlines(keepends=True)
        after = str(d.get("after", "")).splitlines(keepends=True)
        name_a = d.get("before_header", "before")
        name_b = d.get("after_header", "after")
        text = "".join(difflib.unified_diff(before, after, str(name_a), str(name_b)))
        if text:
            self.console.print(text.rstrip("\n"), highlight=False, markup=False)

    def _table(self, live: bool) -> Table:
        table = Table(title=escape(self.current_task) if live else None, title_justify="left")
        for col in ("host", "ok", "changed", "failed", "unreachable", "skipped", "time" if not live else "task"):
            table.add_column(col, justify="left" if col in ("host", "task") else "right")
        for host in sorted(self.result.hosts):
            s = self.result.hosts[host]
            last = escape(_one_line(s.task)) if live else f"{max(0.0, s.finished - s.started):.1f}s"
            table.add_row(escape(host), str(s.ok), _color(s.changed, "yellow"), _color(s.failed, "red"),
                          _color(s.unreachable, "red"), str(s.skipped), last)
        return table

    def _line(self, text: str) -> None:
        self.console.print(f"[dim]{self._elapsed()}[/] {text}", highlight=False, soft_wrap=True)

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.started:6.1f}s"


def _kind(failure) -> str:
    return "UNREACHABLE" if failure.unreachable else "FAILED"


def _one_line(text: str) -> str:
    """Task names may hold newlines (folded Jinja); one line each in the log."""
    return " ".join(str(text).split())


def _color(n: int, color: str) -> str:
    return f"[{color}]{n}[/]" if n else "0"
