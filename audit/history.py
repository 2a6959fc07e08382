"""Run history: what changed since the previous run, and compliance over recent runs.

Pure functions over frames and plain dicts (no files, no clock). An exception is the same
exception in two runs when it has the same patient, rule and cycle start. The counts go to
summary.json and the workbook; the keyed rows (which name patients) only to a user report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from audit.guideline import RULE_CODES

#: What makes two exceptions the same one across runs.
KEYS: tuple[str, ...] = ("patient_id", "rule_code", "cycle_start")
#: Columns of the change listing (changes_since_previous.csv).
CHANGE_COLUMNS: tuple[str, ...] = ("change", "rule_code", "patient_id", "cycle_start")


def exception_keys(exceptions: pl.DataFrame | None) -> pl.DataFrame:
    """The distinct (patient_id, rule_code, cycle_start) keys as text, ``cycle_start`` as ``YYYY-MM-DD``."""
    if exceptions is None or exceptions.height == 0:
        return pl.DataFrame(schema=dict.fromkeys(KEYS, pl.String))
    frame = exceptions.select(KEYS)
    if frame.schema["cycle_start"] in (pl.Date, pl.Datetime):
        frame = frame.with_columns(pl.col("cycle_start").dt.strftime("%Y-%m-%d"))
    return (
        frame.with_columns(pl.col(k).cast(pl.String).fill_null("") for k in KEYS)
        .with_columns(pl.col("cycle_start").str.slice(0, 10))
        .unique(maintain_order=True)
        .sort(KEYS)
    )


def _in_period(period_start: date | None, period_end: date | None) -> pl.Expr:
    """Rows whose text cycle_start lies in the period (an open end accepts everything)."""
    expr = pl.lit(True)
    if period_start is not None:
        expr = expr & (pl.col("cycle_start") >= period_start.isoformat())
    if period_end is not None:
        expr = expr & (pl.col("cycle_start") <= period_end.isoformat())
    return expr


@dataclass(frozen=True)
class HistoryDiff:
    """Exceptions of this run against the previous run's, by key.

    ``new``: in this run, not in the previous one. ``resolved``: in the previous run, inside this
    run's period, and gone now. ``still_open``: in both. ``not_rechecked``: previous exceptions on
    cycles outside this run's period (this run can't say whether they were resolved).
    """

    has_previous: bool
    new: pl.DataFrame
    resolved: pl.DataFrame
    still_open: pl.DataFrame
    not_rechecked: int

    def by_rule(self) -> dict[str, dict[str, int]]:
        """Per rule code: new, resolved and still-open counts (every known code, zeros included)."""
        counts: dict[str, dict[str, int]] = {}
        parts = (("new", self.new), ("resolved", self.resolved), ("still_open", self.still_open))
        codes = list(RULE_CODES)
        for _, frame in parts:
            codes += sorted(set(frame.get_column("rule_code").to_list()) - set(codes))
        for code in codes:
            counts[code] = {name: int((frame.get_column("rule_code") == code).sum()) for name, frame in parts}
        return counts

    def counts(self) -> dict[str, Any] | None:
        """JSON-ready counts (no identifiers); None without a previous run."""
        if not self.has_previous:
            return None
        return {
            "new": self.new.height,
            "resolved": self.resolved.height,
            "still_open": self.still_open.height,
            "not_rechecked": self.not_rechecked,
            "by_rule": self.by_rule(),
        }

    def changes(self) -> pl.DataFrame:
        """The new and resolved exceptions, one row each (names patients: for the run folder only)."""
        parts = [
            frame.with_columns(pl.lit(label).alias("change")).select(CHANGE_COLUMNS)
            for label, frame in (("new", self.new), ("resolved", self.resolved))
        ]
        return pl.concat(parts).sort("change", "rule_code", "cycle_start", "patient_id")


def diff_exceptions(
    previous: pl.DataFrame | None,
    current: pl.DataFrame,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
) -> HistoryDiff:
    """Compare this run's exceptions with the previous run's (None: there was no previous run)."""
    now = exception_keys(current)
    if previous is None:  # nothing to be new or resolved against: every part is empty
        empty = now.clear()
        return HistoryDiff(has_previous=False, new=empty, resolved=empty, still_open=empty, not_rechecked=0)
    before = exception_keys(previous)
    rechecked = before.filter(_in_period(period_start, period_end))
    keys = list(KEYS)
    return HistoryDiff(
        has_previous=True,
        new=now.join(before, on=keys, how="anti").sort(keys),
        resolved=rechecked.join(now, on=keys, how="anti").sort(keys),
        still_open=now.join(before, on=keys, how="semi").sort(keys),
        not_rechecked=before.height - rechecked.height,
    )


def cycles_with_exception(findings: pl.DataFrame) -> int:
    """How many audited cycles have at least one exception."""
    return findings.select("course_id", "cycle_number").unique().height


def compliance_pct(cycles: int | None, with_exception: int | None) -> float | None:
    """% of audited cycles without any exception (None when it can't be known)."""
    if not cycles or with_exception is None:
        return None
    return round(100.0 * (1 - with_exception / cycles), 2)


def _get(mapping: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def trend_entry(summary: Mapping[str, Any], run_name: str) -> dict[str, Any]:
    """One run's line of the trend, read from its summary.json (missing parts become None)."""
    cycles = _int(_get(summary, "audited", "cycles"))
    flagged = _int(_get(summary, "history", "run", "cycles_with_exception"))
    return {
        "run": run_name,
        "started_at": _get(summary, "history", "run", "started_at") or _get(summary, "generated_at"),
        "period_start": _get(summary, "period", "start"),
        "period_end": _get(summary, "period", "end"),
        "cycles_audited": cycles,
        "cycles_with_exception": flagged,
        "exceptions": _int(_get(summary, "exceptions", "total")),
        "compliance_pct": compliance_pct(cycles, flagged),
    }


def compliance_trend(entries: Sequence[Mapping[str, Any]], last: int) -> list[dict[str, Any]]:
    """The ``last`` most recent trend entries, oldest first (ordered by start time, then name)."""
    ordered = sorted(entries, key=lambda e: (str(e.get("started_at") or ""), str(e.get("run") or "")))
    return [dict(e) for e in ordered[-last:]] if last > 0 else []
