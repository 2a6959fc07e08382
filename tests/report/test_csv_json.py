"""exceptions.csv, cycles.csv, rejected_rows.csv, out_of_scope_rows.csv and summary.json."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from audit.frames import CYCLES, FINDINGS, INFUSIONS
from report.csv_json import (
    write_cycles_csv,
    write_exceptions_csv,
    write_out_of_scope_csv,
    write_rejected_csv,
    write_summary_json,
)
from report.model import ReportData
from tests.report.fixtures import cycle, cycles_frame, finding, findings_frame, rejected_frame

EXCEPTIONS_HEADER = [
    "rule_code",
    "severity",
    "patient_id",
    "course_id",
    "cycle_number",
    "cycle_start",
    "observed",
    "limit",
    "message",
    "admin_ids",
    "unit",
    "excess_g",
]
CYCLES_LEADING = [
    "patient_id",
    "course_id",
    "cycle_number",
    "cycle_start",
    "cycle_end",
    "infusion_days",
    "total_g",
    "dosing_weight_kg",
    "weight_basis",
    "g_per_kg",
    "max_daily_g_per_kg",
    "interval_days",
]


def _read(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_exceptions_csv_has_the_contract_header(tmp_path: Path, report_data: ReportData) -> None:
    """The contract's ten columns in order, then unit and excess_g."""
    path = tmp_path / "exceptions.csv"
    rows = write_exceptions_csv(report_data.findings, path)
    table = _read(path)
    assert table[0] == EXCEPTIONS_HEADER
    assert rows == len(table) - 1 == 6


def test_exceptions_csv_formats_dates_and_joins_admin_ids(tmp_path: Path, report_data: ReportData) -> None:
    """cycle_start is YYYY-MM-DD and admin_ids are joined with ';'."""
    path = tmp_path / "exceptions.csv"
    write_exceptions_csv(report_data.findings, path)
    first = dict(zip(EXCEPTIONS_HEADER, _read(path)[1], strict=True))
    assert first["rule_code"] == "DOSE_ABOVE_MAX"
    assert first["cycle_start"] == "2025-02-03"
    assert first["admin_ids"] == "P002-1-a;P002-1-b"
    assert first["excess_g"] == "40.3"
    assert first["unit"] == "g/kg"


def test_exceptions_csv_is_sorted_by_severity_patient_start_rule(tmp_path: Path) -> None:
    """Rows come out high > medium > low, then patient, cycle start, rule, whatever the input order."""
    findings = findings_frame(
        [
            finding("CYCLE_INTERVAL_LONG", "low", "P1", 1, 2, date(2025, 2, 1)),
            finding("IGA_NOT_SCREENED", "high", "P2", 1, 1, date(2025, 1, 1)),
            finding("DOSE_ABOVE_MAX", "high", "P2", 1, 1, date(2025, 1, 1)),
            finding("CYCLE_INTERVAL_SHORT", "medium", "P1", 1, 3, date(2025, 2, 15)),
            finding("DOSE_ABOVE_MAX", "high", "P1", 1, 1, date(2025, 1, 5)),
        ]
    )
    path = tmp_path / "exceptions.csv"
    write_exceptions_csv(findings.reverse(), path)
    order = [(r[1], r[2], r[0]) for r in _read(path)[1:]]
    assert order == [
        ("high", "P1", "DOSE_ABOVE_MAX"),
        ("high", "P2", "DOSE_ABOVE_MAX"),
        ("high", "P2", "IGA_NOT_SCREENED"),
        ("medium", "P1", "CYCLE_INTERVAL_SHORT"),
        ("low", "P1", "CYCLE_INTERVAL_LONG"),
    ]


def test_cycles_csv_has_contract_columns_first_and_only_in_period_rows(tmp_path: Path, report_data: ReportData) -> None:
    """The contract's columns lead, every other cycle column follows; out-of-period cycles are left out."""
    path = tmp_path / "cycles.csv"
    rows = write_cycles_csv(report_data.cycles, path)
    table = _read(path)
    assert table[0][: len(CYCLES_LEADING)] == CYCLES_LEADING
    rest = [c for c in CYCLES if c not in CYCLES_LEADING and c != "in_period"]
    assert table[0][len(CYCLES_LEADING) :] == rest
    assert rows == 6
    assert len(table) == 7
    first = dict(zip(table[0], table[1], strict=True))
    assert first["cycle_start"] == "2025-01-06"
    assert first["admin_ids"] == "P001-1-a;P001-1-b"
    assert first["first_admin_at"] == "2025-01-06T09:30:00"


def test_cycles_csv_orders_courses_numerically(tmp_path: Path) -> None:
    """Course C10 comes after C9 (not after C1), cycles in number order."""
    cycles = cycles_frame(
        [
            cycle("P1", 10, 1, date(2030, 1, 1)),
            cycle("P1", 9, 2, date(2029, 2, 1)),
            cycle("P1", 9, 1, date(2029, 1, 1)),
            cycle("P0", 1, 1, date(2031, 1, 1)),
        ]
    )
    path = tmp_path / "cycles.csv"
    write_cycles_csv(cycles, path)
    assert [(r[1], r[2]) for r in _read(path)[1:]] == [("P0-C1", "1"), ("P1-C9", "1"), ("P1-C9", "2"), ("P1-C10", "1")]


@pytest.mark.parametrize(
    ("writer", "frame", "first_columns"),
    [
        (write_exceptions_csv, pl.DataFrame(schema=FINDINGS), EXCEPTIONS_HEADER),
        (write_cycles_csv, pl.DataFrame(schema=CYCLES), CYCLES_LEADING),
        (write_rejected_csv, rejected_frame([], []), ["source_file", "source_row", "reason"]),
        (write_out_of_scope_csv, pl.DataFrame(schema=INFUSIONS), list(INFUSIONS)),
    ],
)
def test_zero_row_files_still_have_a_header(
    tmp_path: Path, writer: Callable[[pl.DataFrame, Path], int], frame: pl.DataFrame, first_columns: list[str]
) -> None:
    """An audit with nothing to list still writes the header line."""
    path = tmp_path / "out.csv"
    assert writer(frame, path) == 0
    table = _read(path)
    assert len(table) == 1
    assert table[0][: len(first_columns)] == first_columns


def test_rejected_csv_keeps_keys_first_and_original_values_verbatim(tmp_path: Path, report_data: ReportData) -> None:
    """source_file, source_row, reason, then the original columns with their values as read."""
    path = tmp_path / "rejected_rows.csv"
    assert write_rejected_csv(report_data.rejected, path) == 3
    table = _read(path)
    assert table[0][:3] == ["source_file", "source_row", "reason"]
    assert [r[:2] for r in table[1:]] == [["infusions.csv", "3"], ["infusions.csv", "7"], ["labs.csv", "5"]]
    assert "=cmd()" in table[2]


def test_out_of_scope_csv_is_sorted_by_file_and_line(tmp_path: Path, report_data: ReportData) -> None:
    """Out-of-scope rows by source line, administered_at as ISO 8601."""
    path = tmp_path / "out_of_scope_rows.csv"
    assert write_out_of_scope_csv(report_data.out_of_scope, path) == 2
    table = _read(path)
    assert [r[1] for r in table[1:]] == ["4", "12"]
    assert table[1][table[0].index("administered_at")] == "2025-03-04T09:30:00"


def test_csv_write_is_atomic_and_replaces_an_old_file(tmp_path: Path, report_data: ReportData) -> None:
    """The old file is replaced whole and no temporary file is left beside it."""
    path = tmp_path / "exceptions.csv"
    path.write_text("old content\n", encoding="utf-8")
    write_exceptions_csv(report_data.findings, path)
    assert _read(path)[0] == EXCEPTIONS_HEADER
    assert [p.name for p in tmp_path.iterdir()] == ["exceptions.csv"]


def test_failed_csv_write_keeps_the_old_file_and_no_temporary(
    tmp_path: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If writing fails, the previous file is untouched and the temporary file is removed."""
    path = tmp_path / "exceptions.csv"
    path.write_text("old content\n", encoding="utf-8")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pl.LazyFrame, "sink_csv", fail)
    with pytest.raises(OSError, match="disk full"):
        write_exceptions_csv(report_data.findings, path)
    assert path.read_text(encoding="utf-8") == "old content\n"
    assert [p.name for p in tmp_path.iterdir()] == ["exceptions.csv"]


def test_summary_json_is_written_verbatim(tmp_path: Path, report_data: ReportData) -> None:
    """Indent 2, key order kept, non-ASCII kept, trailing newline, same data back."""
    summary = {**report_data.summary, "note": "µg/mL – ok"}
    path = tmp_path / "summary.json"
    write_summary_json(summary, path)
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert '  "tool": {' in text
    assert "µg/mL – ok" in text
    assert json.loads(text) == summary
    assert list(json.loads(text)) == list(summary)


def test_summary_json_turns_non_finite_numbers_into_null(tmp_path: Path) -> None:
    """NaN is not JSON: it is written as null rather than producing an unreadable file."""
    path = tmp_path / "summary.json"
    write_summary_json({"excess_cost": float("nan"), "when": date(2025, 1, 1)}, path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"excess_cost": None, "when": "2025-01-01"}
