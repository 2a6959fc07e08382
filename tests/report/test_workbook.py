"""The workbook's structure and behaviour (beyond the golden dump)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook

import report.sheets
from audit.frames import CYCLES, FINDINGS, INFUSIONS
from report.model import SHEET_ORDER, ReportData
from report.workbook import write_workbook
from tests.report.fixtures import (
    GENERATED_AT,
    cycle,
    cycles_frame,
    finding,
    findings_frame,
    golden_report_data,
    rejected_frame,
    summary_for,
)


def _column(ws: Any, header: str, header_row: int = 3) -> int:
    for cell in ws[header_row]:
        if cell.value == header:
            return int(cell.column)
    raise KeyError(header)


def _texts(ws: Any) -> list[str]:
    return [str(c.value) for row in ws.iter_rows() for c in row if isinstance(c.value, str)]


def test_sheets_are_in_the_contract_order(workbook: Workbook) -> None:
    """Summary, Exceptions, Cycles, Rejected rows, Out of scope, Guideline."""
    assert workbook.sheetnames == list(SHEET_ORDER)
    assert SHEET_ORDER == ("Summary", "Exceptions", "Cycles", "Rejected rows", "Out of scope", "Guideline")


def test_exceptions_are_sorted_by_severity_then_patient_then_start(workbook: Workbook) -> None:
    """High before medium before low; within a severity by patient, cycle start and rule."""
    ws = workbook["Exceptions"]
    rows = [(r[0].value, r[1].value, r[2].value) for r in ws.iter_rows(min_row=4) if r[0].value]
    assert rows == [
        ("High", "DOSE_ABOVE_MAX", "P002"),
        ("High", "IGA_NOT_SCREENED", "P002"),
        ("High", "IGA_DEFICIENT_STANDARD_PRODUCT", "P003"),
        ("Medium", "DOSING_WEIGHT_UNKNOWN", "P003"),
        ("Medium", "CYCLE_INTERVAL_SHORT", "P003"),
        ("Low", "CYCLE_INTERVAL_LONG", "P001"),
    ]


def test_severity_cells_are_coloured_by_severity(workbook: Workbook) -> None:
    """High, medium and low exceptions carry three different fills."""
    ws = workbook["Exceptions"]
    fills = {ws.cell(row=r, column=1).value: ws.cell(row=r, column=1).fill.fgColor.rgb for r in range(4, 10)}
    assert len(set(fills.values())) == 3
    assert fills["High"].endswith("FFC7CE")


def test_each_exception_links_to_its_cycle_row(workbook: Workbook) -> None:
    """The link in every exception row opens the Cycles row of the same patient, course and cycle."""
    exceptions, cycles = workbook["Exceptions"], workbook["Cycles"]
    link_col = _column(exceptions, "Cycle row")
    checked = 0
    for row in exceptions.iter_rows(min_row=4):
        link = row[link_col - 1].hyperlink
        assert link is not None
        assert link.location is not None
        sheet, cell = link.location.split("!")
        assert sheet == "'Cycles'"
        target = cycles[cell].row
        assert [cycles.cell(row=target, column=c).value for c in (1, 2, 3)] == [
            row[2].value,
            row[3].value,
            row[4].value,
        ]
        checked += 1
    assert checked == 6


def test_dates_and_numbers_are_real_values_with_formats(workbook: Workbook) -> None:
    """Cycle start is a date cell (yyyy-mm-dd), doses are numbers with 0.00 / 0.0 formats."""
    ws = workbook["Cycles"]
    start = ws.cell(row=4, column=_column(ws, "Cycle start"))
    assert isinstance(start.value, datetime)
    assert start.value.date() == date(2025, 1, 6)
    assert start.number_format == "yyyy-mm-dd"
    g_per_kg = ws.cell(row=4, column=_column(ws, "Dose (g/kg)"))
    assert isinstance(g_per_kg.value, float)
    assert g_per_kg.number_format == "0.00"
    weight = ws.cell(row=4, column=_column(ws, "Dosing weight (kg)"))
    assert weight.value == 57.0
    assert weight.number_format == "0.0"
    total = ws.cell(row=4, column=_column(ws, "Total (g)"))
    assert total.value == 120.0
    assert total.data_type == "n"


def test_only_in_period_cycles_are_listed(workbook: Workbook) -> None:
    """The fixture's cycle outside the audit period (cycle 0) is not on the Cycles sheet."""
    ws = workbook["Cycles"]
    numbers = [r[2].value for r in ws.iter_rows(min_row=4)]
    assert 0 not in numbers
    assert len(numbers) == 6


def test_detail_sheets_have_frozen_header_filter_and_print_titles(workbook: Workbook) -> None:
    """Every detail sheet freezes its header, filters it, prints it landscape on every page."""
    for name in ("Exceptions", "Cycles", "Rejected rows", "Out of scope"):
        ws = workbook[name]
        assert str(ws.freeze_panes).endswith("4"), name
        assert str(ws.auto_filter.ref).startswith("A3:"), name
        assert ws.print_title_rows == "$3:$3", name
        assert ws.page_setup.orientation == "landscape", name
        assert ws.page_setup.fitToWidth == 1, name
        assert ws.sheet_properties.pageSetUpPr.fitToPage, name


def test_summary_shows_reconciliation_rules_and_excess(workbook: Workbook) -> None:
    """The Summary balances the row counts, describes each rule and gives the excess grams and cost."""
    ws = workbook["Summary"]
    texts = _texts(ws)
    assert "Balanced" in texts
    assert "Cycle total dose per kg of dosing weight is above the maximum (with tolerance)." in texts
    rows = {r[0].value: [c.value for c in r[1:]] for r in ws.iter_rows() if isinstance(r[0].value, str)}
    assert rows["DOSE_ABOVE_MAX"][:3] == ["High", 1, pytest.approx(0.8333)]  # summary: 83.33 %
    assert rows["Grams given above the maximum dose (g)"][0] == pytest.approx(40.3)
    assert rows["Cost of those grams (USD)"][0] == pytest.approx(4030.0)
    assert rows["Read"][:3] == [14, 6, 1]


def test_summary_reports_an_unbalanced_reconciliation(tmp_path: Path, report_data: ReportData) -> None:
    """Rows read that don't add up show NOT BALANCED instead of Balanced."""
    summary = dict(report_data.summary)
    summary["reconciliation"] = {**summary["reconciliation"], "rows_read": 15, "balanced": False}
    path = tmp_path / "r.xlsx"
    write_workbook(ReportData(**{**report_data.__dict__, "summary": summary}), path)
    texts = _texts(load_workbook(path)["Summary"])
    assert "NOT BALANCED" in texts
    assert any("+1 rows are not accounted for" in t for t in texts)


def test_summary_has_rule_and_month_charts(workbook: Workbook) -> None:
    """A horizontal bar chart of exceptions by rule and a line chart of monthly compliance."""
    charts = workbook["Summary"]._charts
    assert [type(c).__name__ for c in charts] == ["BarChart", "LineChart"]
    assert charts[0].barDir == "bar"


def test_monthly_compliance_counts_cycles_without_exceptions(workbook: Workbook) -> None:
    """Jan: 1 of 1 clean; Feb: 1 of 2 (P002's cycle has exceptions); Mar: 0 of 3."""
    ws = workbook["Summary"]
    months = {r[0].value: [c.value for c in r[1:4]] for r in ws.iter_rows() if str(r[0].value).startswith("2025-")}
    assert months == {"2025-01": [1, 0, 1.0], "2025-02": [2, 1, 0.5], "2025-03": [3, 3, 0.0]}


def test_guideline_sheet_lists_parameters_rules_and_products(workbook: Workbook, report_data: ReportData) -> None:
    """Every parameter with its value and unit, every rule, every product, every source citation."""
    ws = workbook["Guideline"]
    by_first = {r[0].value: [c.value for c in r[1:]] for r in ws.iter_rows() if r[0].value}
    guideline = report_data.guideline
    for name, parameter in guideline.parameters.items():
        assert by_first[name][:2] == [parameter.value, parameter.unit], name
    for code in guideline.rules:
        assert code in by_first
    for product in guideline.products:
        assert product.name in by_first
    texts = _texts(ws)
    for source in guideline.sources:
        assert source.citation in texts


def test_document_properties_use_the_report_timestamp(workbook: Workbook) -> None:
    """docProps created/modified are generated_at, not the time of saving."""
    assert workbook.properties.created == GENERATED_AT
    assert workbook.properties.modified == GENERATED_AT


def test_timezone_aware_timestamp_is_written(tmp_path: Path, report_data: ReportData) -> None:
    """An aware generated_at shows its wall-clock time in the Summary; docProps hold it in UTC."""
    aware = datetime(2026, 11, 22, 3, 0, tzinfo=timezone(timedelta(hours=1)))
    path = tmp_path / "tz.xlsx"
    write_workbook(ReportData(**{**report_data.__dict__, "generated_at": aware}), path)
    wb = load_workbook(path)
    assert wb.properties.created == aware.astimezone(UTC).replace(tzinfo=None)
    values = [r[1].value for r in wb["Summary"].iter_rows() if r[0].value == "Report generated"]
    assert values == [datetime(2026, 11, 22, 3, 0)]


def test_empty_audit_still_gives_a_complete_workbook(tmp_path: Path, report_data: ReportData) -> None:
    """No findings, cycles, rejected or out-of-scope rows: every sheet exists with headers and a note."""
    findings, cycles = pl.DataFrame(schema=FINDINGS), pl.DataFrame(schema=CYCLES)
    data = ReportData(
        findings=findings,
        cycles=cycles,
        rejected=rejected_frame([], []),
        out_of_scope=pl.DataFrame(schema=INFUSIONS),
        summary=summary_for(findings, cycles, report_data.guideline),
        guideline=report_data.guideline,
        generated_at=GENERATED_AT,
    )
    path = tmp_path / "empty.xlsx"
    stats = write_workbook(data, path)
    wb = load_workbook(path)
    assert wb.sheetnames == list(SHEET_ORDER)
    assert wb["Exceptions"]["A2"].value == "No exceptions."
    assert wb["Exceptions"]["A3"].value == "Severity"
    assert [type(c).__name__ for c in wb["Summary"]._charts] == ["BarChart"]
    assert stats.rows_written["Exceptions"] == 0
    assert not stats.is_truncated


def test_partial_summary_does_not_break_the_workbook(tmp_path: Path, report_data: ReportData) -> None:
    """A summary missing optional blocks (labs, reviews, cost, inputs) still gives a workbook."""
    summary = {"exceptions": {"total": report_data.findings.height}}
    path = tmp_path / "partial.xlsx"
    write_workbook(ReportData(**{**report_data.__dict__, "summary": summary}), path)
    texts = _texts(load_workbook(path)["Summary"])
    assert "no file" in texts
    assert "not set (all cycles)" in texts


def test_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path, report_data: ReportData) -> None:
    """Only the final file is left in the folder after a write."""
    write_workbook(report_data, tmp_path / "ivig_audit_report.xlsx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ivig_audit_report.xlsx"]


def test_failed_write_leaves_neither_report_nor_temporary_file(
    tmp_path: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If saving fails half-way, the final name never appears and the temporary file is removed."""

    def broken_save(self: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("report.workbook.ExcelWriter.save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_workbook(report_data, tmp_path / "ivig_audit_report.xlsx")
    assert list(tmp_path.iterdir()) == []


def test_links_beyond_excels_hyperlink_limit_become_formulas(
    tmp_path: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past Excel's per-sheet hyperlink limit, links are HYPERLINK() formulas to the same row."""
    monkeypatch.setattr(report.sheets, "EXCEL_MAX_HYPERLINKS", 2)
    path = tmp_path / "links.xlsx"
    write_workbook(report_data, path)
    ws = load_workbook(path)["Exceptions"]
    col = _column(ws, "Cycle row")
    cells = [ws.cell(row=r, column=col) for r in range(4, 10)]
    assert [c.hyperlink is not None for c in cells] == [True, True, False, False, False, False]
    assert cells[2].data_type == "f"
    assert cells[2].value == '=HYPERLINK("#\'Cycles\'!A8","Go to cycle")'


def test_cycles_beyond_the_cap_are_pointed_to_the_csv(tmp_path: Path) -> None:
    """An exception whose cycle is not on the (capped) Cycles sheet says where the cycle is."""
    data = golden_report_data()
    path = tmp_path / "cap.xlsx"
    write_workbook(data, path, max_detail_rows=2)
    ws = load_workbook(path)["Exceptions"]
    col = _column(ws, "Cycle row")
    assert ws.cell(row=4, column=col).value == "see cycles.csv"  # P002's cycle is row 4 of cycles


def test_negative_or_unusual_caps_never_fail(tmp_path: Path, report_data: ReportData) -> None:
    """A cap of 0 (or below) shows no detail rows; a cap above Excel's limit is clamped."""
    stats = write_workbook(report_data, tmp_path / "zero.xlsx", max_detail_rows=-5)
    assert stats.rows_written["Exceptions"] == 0
    assert stats.rows_not_shown["Exceptions"] == 6
    stats = write_workbook(report_data, tmp_path / "huge.xlsx", max_detail_rows=10**9)
    assert stats.rows_not_shown == {"Exceptions": 0, "Cycles": 0, "Rejected rows": 0, "Out of scope": 0}


def test_unknown_unit_and_severity_are_still_written(tmp_path: Path, report_data: ReportData) -> None:
    """A finding with an unexpected severity and unit is listed last, with a generic number format."""
    odd = findings_frame(
        [
            finding("DOSE_ABOVE_MAX", "critical", "P001", 1, 1, date(2025, 1, 6), observed=3.14159, unit="furlongs"),
            finding("DOSE_ABOVE_MAX", "high", "P001", 1, 2, date(2025, 2, 10), observed=2.5, unit="g/kg"),
        ]
    )
    cycles = cycles_frame([cycle("P001", 1, 1, date(2025, 1, 6)), cycle("P001", 1, 2, date(2025, 2, 10))])
    path = tmp_path / "odd.xlsx"
    write_workbook(ReportData(**{**report_data.__dict__, "findings": odd, "cycles": cycles}), path)
    ws = load_workbook(path)["Exceptions"]
    assert [ws["A4"].value, ws["A5"].value] == ["High", "Critical"]
    assert ws["G5"].value == pytest.approx(3.14159)
    assert ws["G5"].number_format == "0.00"
