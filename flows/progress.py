"""The CLI's progress display: one line per finished step on a terminal, nothing in CI or cron.

The lines are the steps' own log records (counts and timings only, never an identifier),
picked up from Prefect's run loggers while the flow runs in this process.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

#: Environment variables that mean "no one is watching": CI systems set CI; anyone may set NO_PROGRESS.
QUIET_ENV = ("CI", "IVIG_AUDIT_NO_PROGRESS")
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
#: Modules whose run-log lines are the steps' own (Prefect's state-change lines are left out).
STEP_MODULES = frozenset({"audit_flow", "scheduled"})


def wants_progress(stream: TextIO | None = None, environ: dict[str, str] | None = None) -> bool:
    """Show progress only on an interactive terminal, and not when CI (or IVIG_AUDIT_NO_PROGRESS) is set."""
    env = os.environ if environ is None else environ
    out = sys.stderr if stream is None else stream
    if any(env.get(name) for name in QUIET_ENV) or env.get("TERM") == "dumb":
        return False
    return bool(getattr(out, "isatty", lambda: False)()) and sys.stdout.isatty()


class StepLines(logging.Handler):
    """Prints each INFO record of a run as ``  ✓ step: message`` through a rich console."""

    def __init__(self, console: object) -> None:
        super().__init__(level=logging.INFO)
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        if record.module not in STEP_MODULES:
            return
        try:
            step = getattr(record, "task_run_name", None) or "flow"
            base, _, tail = step.rpartition("-")  # Prefect names task runs "<task>-<3 hex digits>"
            if base and len(tail) == 3 and all(c in "0123456789abcdef" for c in tail):
                step = base
            self.console.print(f"  [green]✓[/green] [bold]{step}[/bold]: {record.getMessage()}", highlight=False)  # type: ignore[attr-defined]  # rich Console
        except Exception:  # a display problem must never stop an audit
            self.handleError(record)


@contextmanager
def step_progress(enabled: bool, title: str = "Auditing") -> Iterator[None]:
    """While the block runs: a spinner and one line per finished step (when ``enabled``)."""
    if not enabled:
        yield
        return
    from rich.console import Console

    console = Console(stderr=True)
    handler = StepLines(console)
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        with console.status(f"{title}…"):
            yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
