"""The Summary sheet: what was audited, what was found, and whether every row is accounted for.

Page 1 is the overview a committee reads (results, exceptions and compliance
by rule); page 2 holds the two charts; then the monthly compliance table, the
reconciliation, the input files and where the complete data is.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Final

import polars as pl
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart.label import DataLabelList
from openpyxl.chart.marker import DataPoint
from openpyxl.chart.shapes import GraphicalProperties
from openpyxl.drawing.spreadsheet_drawing import AnchorMarker, TwoCellAnchor
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.pagebreak import Break

from audit.frames import FINDINGS
from audit.guideline import RULE_CODES, SEVERITY_ORDER
from report.model import DETAIL_SHEET_FILES, FILE_NAMES, SHEET_EXCEPTIONS, SHEET_SUMMARY, ReportData
from report.ordering import conform, sorted_cycles_in_period
from report.sheets import (
    BOLD,
    NOTE,
    TITLE,
    DetailResult,
    Rows,
    SheetWriter,
    severity_label,
    severity_look,
)
from report.xlsx_cells import (
    BAD_COLOR,
    BAD_FILL,
    FMT_COUNT,
    FMT_DATETIME,
    FMT_G,
    FMT_PCT,
    NOTE_COLOR,
    OK_COLOR,
    OK_FILL,
    WARNING_FILL,
    Look,
    excel_datetime,
)

#: Columns A-E: labels, three number columns, a wide text column.
WIDTHS: Final = (42, 17, 13, 16, 74)
CHART_ROWS: Final = 17
#: Chart colours: stronger shades of the severity fills, so bars read in print.
SEVERITY_BAR: Final = {"high": "C0504D", "medium": "E6A118", "low": "A5A5A5"}
DEFAULT_BAR: Final = "4472C4"
WARNING: Final = Look(bold=True, fill=WARNING_FILL)
WARNING_TEXT: Final = Look(fill=WARNING_FILL)
WRAP: Final = Look(wrap=True, valign="top", indent=1)
TOP: Final = Look(valign="top")
HASH: Final = Look(size=9, color=NOTE_COLOR, indent=1)
BALANCED: Final = Look(bold=True, fill=OK_FILL, color=OK_COLOR, halign="right", indent=1)
NOT_BALANCED: Final = Look(bold=True, fill=BAD_FILL, color=BAD_COLOR, halign="right", indent=1)


def _get(mapping: Any, *keys: str, default: Any = None) -> Any:
    """``mapping[k1][k2]...`` or ``default`` when any level is missing (a partial summary never crashes)."""
    value = mapping
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            return default
        value = value[key]
    return value


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def monthly_compliance(findings: pl.DataFrame, cycles: pl.DataFrame) -> pl.DataFrame:
    """Per month of cycle start: cycles in period, cycles with an exception, share without one."""
    keys = ["patient_id", "course_id", "cycle_number"]
    flagged = conform(findings, FINDINGS).select(keys).unique().with_columns(pl.lit(True).alias("__flag"))
    return (
        sorted_cycles_in_period(cycles)
        .select(*keys, "cycle_start")
        .unique(subset=keys, keep="first", maintain_order=True)
        .join(flagged, on=keys, how="left")
        .with_columns(
            pl.col("cycle_start").dt.strftime("%Y-%m").fill_null("no date").alias("month"),
            pl.col("__flag").fill_null(False),
        )
        .group_by("month")
        .agg(pl.len().alias("cycles"), pl.col("__flag").sum().cast(pl.Int64).alias("with_exception"))
        .with_columns((1 - pl.col("with_exception") / pl.col("cycles")).alias("compliance"))
        .sort("month")
        .select("month", "cycles", "with_exception", "compliance")
        .collect()
    )


def _anchor(first_row: int, rows: int, columns: int = len(WIDTHS)) -> TwoCellAnchor:
    """A chart spanning whole cells: columns A..(columns), ``rows`` rows from ``first_row``."""
    anchor = TwoCellAnchor()
    anchor._from = AnchorMarker(col=0, row=first_row - 1)
    anchor.to = AnchorMarker(col=columns, row=first_row - 1 + rows)
    return anchor


def _value_labels() -> DataLabelList:
    labels = DataLabelList()
    labels.showVal = True
    labels.showSerName = False
    labels.showCatName = False
    labels.showLegendKey = False
    labels.showPercent = False
    return labels


def _rule_chart(r: Rows, first: int, last: int, severities: list[str]) -> BarChart:
    chart = BarChart()
    chart.type = "bar"
    chart.style = 10
    chart.title = "Exceptions by rule"
    chart.legend = None
    chart.gapWidth = 40
    chart.y_axis.title = "Exceptions"
    chart.y_axis.numFmt = "#,##0"
    chart.y_axis.majorGridlines = None
    chart.y_axis.delete = False
    chart.x_axis.delete = False
    chart.x_axis.scaling.orientation = "maxMin"  # first rule at the top, as in the table
    chart.y_axis.crosses = "max"  # ... and the value axis stays at the bottom
    chart.add_data(Reference(r.ws, min_col=3, min_row=first, max_row=last), titles_from_data=False)
    chart.set_categories(Reference(r.ws, min_col=1, min_row=first, max_row=last))
    series = chart.series[0]
    series.graphicalProperties = GraphicalProperties(solidFill=DEFAULT_BAR)
    for idx, severity in enumerate(severities):
        point = DataPoint(idx=idx)
        point.graphicalProperties = GraphicalProperties(solidFill=SEVERITY_BAR.get(severity, DEFAULT_BAR))
        series.dPt.append(point)
    series.dLbls = _value_labels()
    return chart


def _month_chart(r: Rows, first: int, last: int) -> LineChart:
    chart = LineChart()
    chart.title = "Compliance by month of cycle start"
    chart.style = 12
    chart.legend = None
    chart.y_axis.title = "Cycles without an exception"
    chart.y_axis.numFmt = "0%"
    chart.y_axis.scaling.min = 0
    chart.y_axis.scaling.max = 1
    chart.y_axis.delete = False
    chart.x_axis.title = "Month of cycle start"
    chart.x_axis.delete = False
    chart.add_data(Reference(r.ws, min_col=4, min_row=first, max_row=last), titles_from_data=False)
    chart.set_categories(Reference(r.ws, min_col=1, min_row=first, max_row=last))
    series = chart.series[0]
    series.marker.symbol = "circle"
    series.marker.size = 7
    series.graphicalProperties.line.solidFill = "2F5597"
    series.graphicalProperties.line.width = 28575  # 2.25 pt
    series.smooth = False
    series.dLbls = _value_labels()
    series.dLbls.numFmt = "0%"
    series.dLbls.position = "t"
    return chart


#: (label, key in the infusions block, key in the labs block, key in the reviews block)
RECONCILIATION_ROWS: Final = (
    ("Used (infusions: audited)", "rows_audited", "rows_used", "rows_used"),
    ("Out of scope: another indication", "rows_out_of_scope", None, None),
    ("Other lab tests (ignored)", None, "rows_ignored_other_tests", None),
    ("Rejected (sheet Rejected rows)", "rows_rejected", "rows_rejected", "rows_rejected"),
    ("Exact duplicates (counted once)", "rows_duplicate", "rows_duplicate", "rows_duplicate"),
)


def _reconciliation(r: Rows, summary: dict[str, Any]) -> None:
    """Rows read = the sum of where they went, per input file, with a visible check."""
    blocks = [
        _get(summary, "reconciliation", default={}) or {},
        _get(summary, "labs"),
        _get(summary, "reviews"),
    ]
    r.header(["Rows", "Infusions", "IgA results", "Reviews"], (1, 2, 3))
    r.append([r.text("Read", BOLD), *(_block_cell(r, b, "rows_read", bold=True) for b in blocks)])
    for label, *keys in RECONCILIATION_ROWS:
        r.append([r.text(f"    {label}"), *(_block_cell(r, b, k) for b, k in zip(blocks, keys, strict=True))])
    sums: list[int | None] = []
    for block, column in zip(blocks, range(3), strict=True):
        if not isinstance(block, dict):
            sums.append(None)
            continue
        parts = [_count(block.get(row[column + 1])) for row in RECONCILIATION_ROWS if row[column + 1]]
        present = [p for p in parts if p is not None]
        sums.append(sum(present) if present else None)
    r.append([r.text("Sum of the rows above", BOLD), *(r.number(v, FMT_COUNT, BOLD) for v in sums)])
    checks = []
    for idx, (block, added) in enumerate(zip(blocks, sums, strict=True)):
        if not isinstance(block, dict):
            checks.append(r.text("no file", Look(halign="right", indent=1, color=NOTE_COLOR)))
            continue
        read = _count(block.get("rows_read"))
        ok = read is not None and read == added and (idx > 0 or block.get("balanced", True) is not False)
        checks.append(r.text("Balanced", BALANCED) if ok else r.text("NOT BALANCED", NOT_BALANCED))
    r.append([r.text("Check: read = sum", BOLD), *checks])
    infusions = blocks[0]
    read, added = _count(infusions.get("rows_read")), sums[0]
    if read is not None and added is not None and read != added:
        r.append(
            [
                r.text(
                    f"Infusions: {read - added:+,} rows are not accounted for; do not rely on this report.",
                    Look(bold=True, color=BAD_COLOR),
                )
            ]
        )


def _block_cell(r: Rows, block: Any, key: str | None, *, bold: bool = False) -> Any:
    if not isinstance(block, dict) or key is None:
        return r.text("-", Look(halign="right", indent=1, color=NOTE_COLOR))
    return r.number(_count(block.get(key)), FMT_COUNT, BOLD if bold else None)


def _title_block(r: Rows, data: ReportData) -> None:
    summary, guideline = data.summary, data.guideline
    r.append([r.text("IVIG audit report: dermatomyositis", TITLE)], height=24)
    r.append([r.text(guideline.profile.title, NOTE)])
    r.blank()
    start = _parse_date(_get(summary, "period", "start"))
    end = _parse_date(_get(summary, "period", "end"))
    r.pair("Audit period: cycles starting from", r.date(start) if start else r.text("not set (all cycles)"))
    r.pair("Audit period: cycles starting up to", r.date(end) if end else r.text("not set (all cycles)"))
    offset = data.generated_at.strftime("%z")
    r.pair(
        "Report generated",
        r.date(excel_datetime(data.generated_at), FMT_DATETIME),
        f"local time, UTC offset {offset[:3]}:{offset[3:]}" if offset else None,
    )
    name = _get(summary, "guideline", "name", default=guideline.profile.name)
    version = _get(summary, "guideline", "version", default=guideline.profile.version)
    r.pair("Guideline profile", r.text(f"{name} version {version}"))
    tool = f"{_get(summary, 'tool', 'name', default='ivig-audit')} {_get(summary, 'tool', 'version', default='')}"
    r.pair("Tool", r.text(tool.strip()))
    identifiers = {True: "pseudonymized (keyed hash)", False: "as in the source files"}
    r.pair("Patient identifiers", r.text(identifiers.get(_get(summary, "pseudonymized"), "not stated")))


def _truncation_block(r: Rows, details: dict[str, DetailResult]) -> None:
    """A highlighted note per detail sheet that does not show all its rows."""
    truncated = {name: d for name, d in details.items() if d.rows_not_shown > 0}
    if not truncated:
        return
    wide = len(WIDTHS) - 1
    r.blank()
    r.append([r.text("Not every row is shown in this workbook", WARNING), *(r.filled(WARNING) for _ in range(wide))])
    for name, d in truncated.items():
        order = ", highest severity first" if name == SHEET_EXCEPTIONS else ""
        message = (
            f"{name}: {d.rows_not_shown:,} rows not shown (the sheet shows the first {d.rows_written:,}{order}). "
            f"The complete data is in {DETAIL_SHEET_FILES[name]}."
        )
        r.append([r.text(message, WARNING_TEXT), *(r.filled(WARNING_TEXT) for _ in range(wide))])


def _exceptions_total(data: ReportData) -> int:
    total = _count(_get(data.summary, "exceptions", "total"))
    return data.findings.height if total is None else total


def _results_block(r: Rows, data: ReportData) -> None:
    summary, guideline = data.summary, data.guideline
    r.blank()
    r.section("Results")
    r.pair("Patients audited", r.number(_count(_get(summary, "audited", "patients"))))
    r.pair("Courses audited", r.number(_count(_get(summary, "audited", "courses"))))
    r.pair("Cycles audited (starting in the audit period)", r.number(_count(_get(summary, "audited", "cycles"))))
    total, listed = _exceptions_total(data), data.findings.height
    r.pair("Exceptions", r.number(total, FMT_COUNT, BOLD))
    if total != listed:
        mismatch = f"the summary counts {total:,} exceptions but {listed:,} are listed"
        r.pair("Check", r.text(mismatch, Look(fill=BAD_FILL, color=BAD_COLOR)))
    by_severity = _get(summary, "exceptions", "by_severity") or dict(
        data.findings.group_by("severity").len().iter_rows()
    )
    for severity in SEVERITY_ORDER:
        count = _count(by_severity.get(severity, 0))
        r.append(
            [r.text(f"    {severity_label(severity)} severity"), r.number(count, FMT_COUNT, severity_look(severity))]
        )
    r.pair(
        "Grams given above the maximum dose (g)",
        r.number(_get(summary, "excess_g_total"), FMT_G, BOLD),
        "sum over DOSE_ABOVE_MAX exceptions of the grams above the limit (with tolerance)",
    )
    cost = _get(summary, "excess_cost")
    if cost is not None:
        currency = str(_get(summary, "currency", default=guideline.cost.currency) or "")
        price = _get(summary, "price_per_g", default=guideline.cost.price_per_g)
        note = f"at {price:,.2f} {currency} per gram" if isinstance(price, int | float) else None
        if note and guideline.cost.source:
            note += f" ({guideline.cost.source})"
        r.pair(f"Cost of those grams ({currency})", r.number(cost, "#,##0.00", BOLD), note)


def _rules_block(r: Rows, data: ReportData) -> tuple[int, int, list[str]]:
    """The by-rule table; returns its first and last data rows and each row's severity (for the chart)."""
    summary, guideline = data.summary, data.guideline
    r.blank()
    r.section("Exceptions and compliance by rule")
    r.header(["Rule", "Severity", "Exceptions", "Compliance (% of cycles without it)", "What the rule checks"], (2, 3))
    by_rule = _get(summary, "exceptions", "by_rule") or dict(data.findings.group_by("rule_code").len().iter_rows())
    compliance = _get(summary, "compliance_by_rule", default={}) or {}
    codes = [c for c in RULE_CODES if c in guideline.rules]
    codes += sorted(set(by_rule) - set(codes))
    first = r.row + 1
    severities: list[str] = []
    for code in codes:
        rule = guideline.rules.get(code)
        severity = rule.severity if rule else ""
        severities.append(severity)
        pct = compliance.get(code)
        if rule is None:
            description, share = "rule not in this profile", r.number(None, FMT_PCT, TOP)
        elif not rule.enabled:
            description = f"{rule.description} (rule disabled in this profile)"
            share = r.text("not evaluated", Look(halign="right", indent=1, valign="top"))
        else:
            description = rule.description
            share = r.number(pct / 100 if isinstance(pct, int | float) else None, FMT_PCT, TOP)
        r.append(
            [
                r.text(code, TOP),
                r.text(severity_label(severity), severity_look(severity, valign="top")),
                r.number(_count(by_rule.get(code, 0)), FMT_COUNT, TOP),
                share,
                r.text(description, WRAP),
            ]
        )
    last = r.row
    r.append([r.text("Total", BOLD), None, r.number(_exceptions_total(data), FMT_COUNT, BOLD)])
    return first, last, severities


def _months_block(r: Rows, months: pl.DataFrame, chart_row: int | None) -> None:
    r.section("Compliance by month of cycle start")
    r.header(["Month", "Cycles audited", "Cycles with an exception", "Compliance (% without an exception)"], (1, 2, 3))
    first = r.row + 1
    for month, cycles, with_exception, share in months.iter_rows():
        r.append([r.text(month), r.number(cycles), r.number(with_exception), r.number(share, FMT_PCT)])
    if chart_row is not None:
        r.ws.add_chart(_month_chart(r, first, r.row), _anchor(chart_row, CHART_ROWS))
    else:
        r.append([r.text("No cycles in the audit period.", NOTE)])


def _details_block(r: Rows, details: dict[str, DetailResult]) -> None:
    r.blank()
    r.section("Detail sheets and complete data")
    r.header(["Sheet", "Rows", "Shown", "Not shown", "Complete data in"], (1, 2, 3))
    for name, d in details.items():
        r.append(
            [
                r.text(name),
                r.number(d.rows_written + d.rows_not_shown),
                r.number(d.rows_written),
                r.number(d.rows_not_shown, FMT_COUNT, WARNING if d.rows_not_shown else None),
                r.text(DETAIL_SHEET_FILES[name], Look(indent=1)),
            ]
        )
    r.append([r.text("Run summary (for programs)"), None, None, None, r.text(FILE_NAMES["summary"], Look(indent=1))])


def _inputs_block(r: Rows, data: ReportData) -> None:
    summary, guideline = data.summary, data.guideline
    r.blank()
    r.section("Input files")
    r.header(["Kind", "Rows read", "", "", "File and SHA-256"], (1,))
    for item in _get(summary, "inputs", default=[]) or []:
        if isinstance(item, dict):
            kind, rows, file = item.get("kind"), _count(item.get("rows_read")), item.get("file")
            r.append([r.text(kind), r.number(rows), None, None, r.text(file, Look(indent=1))])
            r.append([None, None, None, None, r.text(f"SHA-256 {item.get('sha256') or 'not recorded'}", HASH)])
    r.blank()
    r.section("Guideline profile (parameters, rules and sources: sheet Guideline)")
    g = _get(summary, "guideline", default={}) or {}
    r.pair("Profile", r.text(g.get("name", guideline.profile.name)))
    r.pair("Version", r.text(g.get("version", guideline.profile.version)))
    r.pair("Title", r.text(g.get("title", guideline.profile.title)))
    r.pair("Profile file SHA-256", r.text(g.get("sha256") or "not recorded", Look(size=9, color=NOTE_COLOR)))


def _history_block(r: Rows, summary: dict[str, Any]) -> None:
    """Scheduled runs only: what changed since the previous run, and compliance over recent runs."""
    hist = _get(summary, "history")
    if not isinstance(hist, dict):
        return
    r.blank()
    r.section("Since the previous run")
    previous, since = hist.get("previous_run"), hist.get("since_previous")
    if not isinstance(previous, dict) or not isinstance(since, dict):
        r.pair("Previous run", r.text(f"none to compare with ({hist.get('note') or 'no earlier run'})"))
    else:
        period = previous.get("period") or {}
        r.pair(
            "Previous run",
            r.text(previous.get("name")),
            f"cycles starting {period.get('start') or '-'} to {period.get('end') or '-'}",
        )
        notes = (
            ("new", "New exceptions", "in this run, not in the previous one (same patient, rule and cycle start)"),
            ("resolved", "Resolved exceptions", "in the previous run on a cycle of this period, gone now"),
            ("still_open", "Still open", "in both runs"),
            ("not_rechecked", "Not re-checked", "previous exceptions on cycles outside this run's period"),
        )
        for key, label, note in notes:
            r.pair(label, r.number(_count(since.get(key)), FMT_COUNT, BOLD if key != "not_rechecked" else None), note)
        changed = {
            code: c
            for code, c in (since.get("by_rule") or {}).items()
            if isinstance(c, dict) and (c.get("new") or c.get("resolved"))
        }
        if changed:
            r.header(["Rule", "New", "Resolved", "Still open"], (1, 2, 3))
            for code, c in changed.items():
                r.append(
                    [
                        r.text(code),
                        r.number(_count(c.get("new"))),
                        r.number(_count(c.get("resolved"))),
                        r.number(_count(c.get("still_open"))),
                    ]
                )
        r.pair("Each new and resolved exception", r.text("changes_since_previous.csv"))
    trend = [t for t in hist.get("trend") or [] if isinstance(t, dict)]
    if not trend:
        return
    r.blank()
    r.section("Compliance trend over recent runs")
    r.header(
        ["Run", "Cycles audited", "Cycles with an exception", "Compliance (% without an exception)", "Audit period"],
        (1, 2, 3),
    )
    for t in trend:
        pct = t.get("compliance_pct")
        r.append(
            [
                r.text(t.get("run")),
                r.number(_count(t.get("cycles_audited"))),
                r.number(_count(t.get("cycles_with_exception"))),
                r.number(pct / 100 if isinstance(pct, int | float) else None, FMT_PCT),
                r.text(f"{t.get('period_start') or '-'} to {t.get('period_end') or '-'}", Look(indent=1)),
            ]
        )


def write_summary(writer: SheetWriter, details: dict[str, DetailResult]) -> int:
    """Fill the Summary sheet; returns the number of rows written."""
    data = writer.data
    ws = writer.sheets[SHEET_SUMMARY]
    writer.setup_sheet(ws, WIDTHS)
    r = Rows(writer, ws, WIDTHS)

    # Page 1: the overview.
    _title_block(r, data)
    _truncation_block(r, details)
    _results_block(r, data)
    first_rule, last_rule, severities = _rules_block(r, data)
    _history_block(r, data.summary)

    # Page 2: the charts (the monthly chart reads the table on page 3).
    months = monthly_compliance(data.findings, data.cycles)
    ws.row_breaks.append(Break(id=r.row))
    r.blank()
    r.section("Charts")
    ws.add_chart(_rule_chart(r, first_rule, last_rule, severities), _anchor(r.row + 1, CHART_ROWS))
    r.blank(CHART_ROWS + 1)
    month_chart_row = r.row + 1 if months.height else None
    if month_chart_row is not None:
        r.blank(CHART_ROWS)
    else:
        r.append([r.text("No cycles in the audit period: no monthly compliance chart.", NOTE)])

    # Page 3 on: the tables behind the numbers.
    ws.row_breaks.append(Break(id=r.row))
    r.blank()
    _months_block(r, months, month_chart_row)
    r.blank()
    r.section("Reconciliation: every input row is accounted for")
    _reconciliation(r, data.summary)
    _details_block(r, details)
    _inputs_block(r, data)
    ws.print_area = f"A1:{get_column_letter(len(WIDTHS))}{r.row}"
    return r.row
