"""Run history on disk: earlier run folders under the output root, read back for the comparison.

A run folder is a visible (not dot-prefixed) folder holding a ``summary.json``; staging
folders of unfinished runs are hidden and never read. The comparison itself is pure
(``audit.history``); this module only finds and reads the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import polars as pl

from audit import history
from flows.steps import REPORT_FILES
from report.atomic import atomic_path

CHANGES_FILE = "changes_since_previous.csv"
#: How many runs (this one included) the compliance trend shows.
DEFAULT_TREND_RUNS = 12


@dataclass(frozen=True)
class PastRun:
    """An earlier, finished run folder and its summary."""

    path: Path
    summary: dict[str, Any]

    @property
    def started_at(self) -> str:
        run = self.summary.get("history", {}).get("run", {}) if isinstance(self.summary.get("history"), dict) else {}
        return str(run.get("started_at") or self.summary.get("generated_at") or "")


def past_runs(output_root: Path) -> list[PastRun]:
    """Finished run folders under ``output_root``, oldest first (unreadable summaries are skipped)."""
    if not output_root.is_dir():
        return []
    runs = []
    for folder in output_root.iterdir():
        summary_path = folder / REPORT_FILES["summary"]
        if folder.name.startswith(".") or not summary_path.is_file():
            continue
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict):
            runs.append(PastRun(folder, summary))
    return sorted(runs, key=lambda r: (r.started_at, r.path.name))


def read_exceptions(run: PastRun) -> pl.DataFrame | None:
    """The key columns of a run's exceptions.csv (None if the file is missing or unreadable)."""
    path = run.path / REPORT_FILES["exceptions"]
    try:
        frame = pl.read_csv(path, infer_schema=False, columns=list(history.KEYS))
    except (OSError, pl.exceptions.PolarsError):
        return None
    return frame


def build_history(
    findings: pl.DataFrame,
    *,
    cycles_audited: int,
    output_root: Path,
    run_name: str,
    started_at: datetime,
    period_start: date,
    period_end: date,
    pseudonymized: bool,
    trend_runs: int = DEFAULT_TREND_RUNS,
) -> tuple[dict[str, Any], pl.DataFrame]:
    """The summary's ``history`` block (counts only) and the listing of new/resolved exceptions."""
    runs = past_runs(output_root)
    previous = runs[-1] if runs else None
    flagged = history.cycles_with_exception(findings)
    this_run = {
        "name": run_name,
        "started_at": started_at.isoformat(timespec="seconds"),
        "cycles_audited": cycles_audited,
        "cycles_with_exception": flagged,
        "compliance_pct": history.compliance_pct(cycles_audited, flagged),
    }
    note = None
    previous_keys = None
    if previous is None:
        note = "no earlier run in this output folder"
    elif bool(previous.summary.get("pseudonymized")) != pseudonymized:
        note = "the previous run's patient identifiers were written differently (pseudonymized or not)"
        previous = None
    else:
        previous_keys = read_exceptions(previous)
        if previous_keys is None:
            note = "the previous run's exceptions.csv can't be read"
            previous = None
    diff = history.diff_exceptions(
        previous_keys if previous is not None else None, findings, period_start=period_start, period_end=period_end
    )
    entries = [history.trend_entry(r.summary, r.path.name) for r in runs]
    current = {
        "audited": {"cycles": cycles_audited},
        "period": {"start": period_start.isoformat(), "end": period_end.isoformat()},
        "exceptions": {"total": findings.height},
        "history": {"run": this_run},
    }
    entries.append(history.trend_entry(current, run_name))
    block = {
        "run": this_run,
        "previous_run": None
        if previous is None
        else {
            "name": previous.path.name,
            "started_at": previous.started_at,
            "period": previous.summary.get("period"),
        },
        "note": note,
        "since_previous": diff.counts(),
        "trend": history.compliance_trend(entries, trend_runs),
    }
    return block, diff.changes()


def write_changes(changes: pl.DataFrame, folder: Path) -> Path:
    """Write the new/resolved listing (names patients: a user report) atomically into ``folder``."""
    path = folder / CHANGES_FILE
    with atomic_path(path) as tmp:
        changes.write_csv(tmp)
    return path
