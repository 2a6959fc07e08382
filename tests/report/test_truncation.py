"""Large audits: detail sheets are capped, highest severity first, and the Summary says what is missing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from openpyxl import load_workbook

from report.model import ReportData
from report.workbook import write_workbook
from tests.report.fixtures import cycle, cycles_frame, finding, findings_frame, golden_report_data, summary_for

SEVERITIES = ["low", "medium", "high", "low", "high", "medium", "low", "low", "medium", "low"]


def _ten_findings() -> ReportData:
    base = golden_report_data()
    findings = findings_frame(
        [
            finding("CYCLE_INTERVAL_LONG", severity, f"P{i:03d}", 1, 1, date(2025, 1, 1 + i), observed=40.0, limit=35.0)
            for i, severity in enumerate(SEVERITIES)
        ]
    )
    cycles = cycles_frame([cycle(f"P{i:03d}", 1, 1, date(2025, 1, 1 + i)) for i in range(10)])
    return ReportData(
        **{
            **base.__dict__,
            "findings": findings,
            "cycles": cycles,
            "summary": summary_for(findings, cycles, base.guideline),
        }
    )


def test_cap_of_three_shows_the_three_most_severe(tmp_path: Path) -> None:
    """With max_detail_rows=3 and 10 findings, the sheet shows 3 rows: the high ones, then a medium."""
    path = tmp_path / "capped.xlsx"
    stats = write_workbook(_ten_findings(), path, max_detail_rows=3)
    ws = load_workbook(path)["Exceptions"]
    shown = [(ws.cell(row=r, column=1).value, ws.cell(row=r, column=3).value) for r in range(4, 8)]
    assert shown == [("High", "P002"), ("High", "P004"), ("Medium", "P001"), (None, None)]
    assert stats.rows_written["Exceptions"] == 3
    assert stats.rows_not_shown["Exceptions"] == 7
    assert stats.rows_not_shown["Cycles"] == 7
    assert stats.is_truncated


def test_summary_states_rows_not_shown_and_names_the_csv(tmp_path: Path) -> None:
    """The Summary says 7 exception rows are not shown and that exceptions.csv has them all."""
    path = tmp_path / "capped.xlsx"
    write_workbook(_ten_findings(), path, max_detail_rows=3)
    wb = load_workbook(path)
    texts = [str(c.value) for row in wb["Summary"].iter_rows() for c in row if c.value is not None]
    notes = [t for t in texts if t.startswith("Exceptions: ")]
    assert notes == [
        "Exceptions: 7 rows not shown (the sheet shows the first 3, highest severity first). "
        "The complete data is in exceptions.csv."
    ]
    assert any(t.startswith("Cycles: 7 rows not shown") and t.endswith("cycles.csv.") for t in texts)
    detail = {r[0].value: [c.value for c in r[1:5]] for r in wb["Summary"].iter_rows() if r[0].value == "Exceptions"}
    assert detail["Exceptions"] == [10, 3, 7, "exceptions.csv"]
    note = wb["Exceptions"]["A2"].value
    assert "7 rows not shown" in note
    assert "exceptions.csv" in note


def test_uncapped_workbook_shows_every_row(tmp_path: Path) -> None:
    """With the default cap, all 10 exceptions are listed and nothing is reported missing."""
    path = tmp_path / "all.xlsx"
    stats = write_workbook(_ten_findings(), path)
    assert stats.rows_written["Exceptions"] == 10
    assert not stats.is_truncated
    texts = [str(c.value) for row in load_workbook(path)["Summary"].iter_rows() for c in row if c.value]
    assert "Not every row is shown in this workbook" not in texts
    assert stats.as_dict()["rows_not_shown"] == {"Exceptions": 0, "Cycles": 0, "Rejected rows": 0, "Out of scope": 0}
