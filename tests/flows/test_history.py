"""Run history: new / resolved / still open by (patient, rule, cycle start), the trend, the workbook block."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl

from audit import history
from flows import history as run_history
from report.workbook import write_workbook
from tests.report.fixtures import finding, findings_frame, golden_report_data

OCT = (date(2026, 10, 1), date(2026, 10, 31))


def _findings(*rows: tuple[str, str, date]) -> pl.DataFrame:
    return findings_frame([finding(rule, "high", pid, 1, 1, start) for pid, rule, start in rows])


def _previous_csv(*rows: tuple[str, str, str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"patient_id": [r[0] for r in rows], "rule_code": [r[1] for r in rows], "cycle_start": [r[2] for r in rows]},
        schema=dict.fromkeys(history.KEYS, pl.String),
    )


def test_diff_separates_new_resolved_and_still_open() -> None:
    """Same patient, rule and cycle start is the same exception; the rest is new or resolved."""
    previous = _previous_csv(
        ("P1", "DOSE_ABOVE_MAX", "2026-10-03"),
        ("P2", "IGA_NOT_SCREENED", "2026-10-05"),
        ("P3", "DOSE_BELOW_MIN", "2026-09-20"),  # outside this run's period: not re-checked
    )
    current = _findings(("P1", "DOSE_ABOVE_MAX", date(2026, 10, 3)), ("P4", "DOSE_ABOVE_MAX", date(2026, 10, 9)))
    diff = history.diff_exceptions(previous, current, period_start=OCT[0], period_end=OCT[1])
    counts = diff.counts()
    assert counts is not None
    assert (counts["new"], counts["resolved"], counts["still_open"], counts["not_rechecked"]) == (1, 1, 1, 1)
    assert counts["by_rule"]["DOSE_ABOVE_MAX"] == {"new": 1, "resolved": 0, "still_open": 1}
    assert counts["by_rule"]["IGA_NOT_SCREENED"] == {"new": 0, "resolved": 1, "still_open": 0}
    assert diff.changes().rows() == [
        ("new", "DOSE_ABOVE_MAX", "P4", "2026-10-09"),
        ("resolved", "IGA_NOT_SCREENED", "P2", "2026-10-05"),
    ]


def test_same_rule_on_another_cycle_is_a_different_exception() -> None:
    """A patient's rule firing on a different cycle start is new, and the old one resolved."""
    previous = _previous_csv(("P1", "DOSE_ABOVE_MAX", "2026-10-03"))
    current = _findings(("P1", "DOSE_ABOVE_MAX", date(2026, 10, 30)))
    counts = history.diff_exceptions(previous, current).counts()
    assert counts is not None
    assert (counts["new"], counts["resolved"], counts["still_open"]) == (1, 1, 0)


def test_empty_previous_run_makes_everything_new() -> None:
    """A previous run without exceptions: every current exception is new, nothing resolved."""
    current = _findings(("P1", "DOSE_ABOVE_MAX", date(2026, 10, 3)), ("P1", "DOSE_BELOW_MIN", date(2026, 10, 3)))
    counts = history.diff_exceptions(_previous_csv(), current).counts()
    assert counts is not None
    assert (counts["new"], counts["resolved"], counts["still_open"]) == (2, 0, 0)


def test_no_previous_run_gives_no_counts_and_no_changes() -> None:
    """Without a previous run there is nothing to compare: counts are None and the listing is empty."""
    diff = history.diff_exceptions(None, _findings(("P1", "DOSE_ABOVE_MAX", date(2026, 10, 3))))
    assert diff.counts() is None
    assert diff.changes().height == 0
    assert diff.changes().columns == list(history.CHANGE_COLUMNS)


def test_trend_keeps_the_last_runs_oldest_first() -> None:
    """The trend orders runs by start time and keeps the last N; compliance = cycles without an exception."""
    entries = [
        history.trend_entry(
            {
                "audited": {"cycles": 40},
                "period": {"start": f"2026-0{m}-01", "end": f"2026-0{m}-28"},
                "exceptions": {"total": 12},
                "history": {"run": {"started_at": f"2026-0{m + 1}-02T06:00:00", "cycles_with_exception": 10}},
            },
            f"run-{m}",
        )
        for m in (3, 1, 2)
    ]
    trend = history.compliance_trend(entries, last=2)
    assert [t["run"] for t in trend] == ["run-2", "run-3"]
    assert trend[0]["compliance_pct"] == 75.0
    assert history.compliance_trend(entries, last=0) == []


def test_trend_entry_of_an_old_summary_has_unknown_compliance() -> None:
    """A summary without the history block still gives a trend line, with unknown compliance."""
    entry = history.trend_entry({"audited": {"cycles": 0}, "generated_at": "2026-10-02T06:00:00"}, "old")
    assert entry["started_at"] == "2026-10-02T06:00:00"
    assert entry["compliance_pct"] is None
    assert history.compliance_pct(0, 0) is None


def _write_run(root: Path, name: str, started: str, exceptions: list[tuple[str, str, str]]) -> None:
    folder = root / name
    folder.mkdir(parents=True)
    summary = {
        "generated_at": started,
        "period": {"start": "2026-09-01", "end": "2026-09-30"},
        "audited": {"cycles": 10},
        "exceptions": {"total": len(exceptions)},
        "pseudonymized": False,
        "history": {"run": {"started_at": started, "cycles_with_exception": len(exceptions)}},
    }
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    _previous_csv(*exceptions).write_csv(folder / "exceptions.csv")


def test_build_history_compares_with_the_latest_finished_run(tmp_path: Path) -> None:
    """The latest visible run folder is the previous run; hidden staging folders are ignored."""
    _write_run(tmp_path, "2026-10-02_2026-09_060000", "2026-10-02T06:00:00", [("P9", "DOSE_ABOVE_MAX", "2026-10-03")])
    _write_run(tmp_path, "2026-11-02_2026-10_060000", "2026-11-02T06:00:00", [("P1", "DOSE_ABOVE_MAX", "2026-10-03")])
    _write_run(tmp_path, ".2026-11-03_2026-10_060000.partial", "2026-11-03T06:00:00", [])
    block, changes = run_history.build_history(
        _findings(("P1", "DOSE_ABOVE_MAX", date(2026, 10, 3)), ("P2", "DOSE_BELOW_MIN", date(2026, 10, 4))),
        cycles_audited=20,
        output_root=tmp_path,
        run_name="now",
        started_at=datetime(2026, 11, 4, 6, 0),
        period_start=OCT[0],
        period_end=OCT[1],
        pseudonymized=False,
    )
    assert block["previous_run"]["name"] == "2026-11-02_2026-10_060000"
    assert block["since_previous"]["new"] == 1
    assert block["since_previous"]["still_open"] == 1
    assert [t["run"] for t in block["trend"]] == ["2026-10-02_2026-09_060000", "2026-11-02_2026-10_060000", "now"]
    assert block["run"]["compliance_pct"] == 90.0
    assert changes.rows() == [("new", "DOSE_BELOW_MIN", "P2", "2026-10-04")]
    assert "P1" not in json.dumps(block)


def test_build_history_without_earlier_runs_says_so(tmp_path: Path) -> None:
    """A first run states there is nothing to compare with and starts the trend."""
    block, changes = run_history.build_history(
        _findings(),
        cycles_audited=0,
        output_root=tmp_path / "missing",
        run_name="first",
        started_at=datetime(2026, 11, 2, 6, 0),
        period_start=OCT[0],
        period_end=OCT[1],
        pseudonymized=False,
    )
    assert block["since_previous"] is None
    assert block["previous_run"] is None
    assert block["note"] == "no earlier run in this output folder"
    assert [t["run"] for t in block["trend"]] == ["first"]
    assert changes.height == 0


def _history_block() -> dict[str, Any]:
    return {
        "run": {"name": "2026-11-02_2026-10_060000", "compliance_pct": 80.0},
        "previous_run": {"name": "2026-10-02_2026-09_060000", "period": {"start": "2026-09-01", "end": "2026-09-30"}},
        "note": None,
        "since_previous": {
            "new": 3,
            "resolved": 2,
            "still_open": 5,
            "not_rechecked": 1,
            "by_rule": {"DOSE_ABOVE_MAX": {"new": 3, "resolved": 2, "still_open": 5}},
        },
        "trend": [
            {"run": "2026-10-02_2026-09_060000", "cycles_audited": 10, "cycles_with_exception": 3,
             "compliance_pct": 70.0, "period_start": "2026-09-01", "period_end": "2026-09-30"},
            {"run": "2026-11-02_2026-10_060000", "cycles_audited": 10, "cycles_with_exception": 2,
             "compliance_pct": 80.0, "period_start": "2026-10-01", "period_end": "2026-10-31"},
        ],
    }  # fmt: skip


def _summary_text(path: Path) -> list[list[Any]]:
    ws = openpyxl.load_workbook(path, read_only=True)["Summary"]
    return [[v for v in row if v is not None] for row in ws.iter_rows(values_only=True)]


def test_workbook_summary_shows_changes_and_trend(tmp_path: Path) -> None:
    """With a history block the Summary shows 'Since the previous run' counts and the trend table."""
    data = golden_report_data()
    data = dataclasses.replace(data, summary={**data.summary, "history": _history_block()})
    write_workbook(data, tmp_path / "wb.xlsx")
    rows = _summary_text(tmp_path / "wb.xlsx")
    assert ["Since the previous run"] in rows
    assert ["New exceptions", 3, "in this run, not in the previous one (same patient, rule and cycle start)"] in rows
    assert ["Resolved exceptions", 2, "in the previous run on a cycle of this period, gone now"] in rows
    assert ["DOSE_ABOVE_MAX", 3, 2, 5] in rows
    assert ["Compliance trend over recent runs"] in rows
    assert ["2026-11-02_2026-10_060000", 10, 2, 0.8, "2026-10-01 to 2026-10-31"] in rows


def test_workbook_without_history_has_no_history_block(tmp_path: Path) -> None:
    """An ad-hoc run's Summary (no history in the summary) is unchanged: no history block."""
    write_workbook(golden_report_data(), tmp_path / "wb.xlsx")
    assert ["Since the previous run"] not in _summary_text(tmp_path / "wb.xlsx")
