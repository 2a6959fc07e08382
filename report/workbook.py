"""ivig_audit_report.xlsx: the workbook a QA pharmacist opens, filters and prints.

Sheets, in order: Summary, Exceptions, Cycles, Rejected rows, Out of scope, Guideline.

The whole workbook is written in openpyxl's write-only (streaming) mode: each
sheet's rows go to a temporary file as they are produced, so memory does not
grow with the number of cells. Everything the report needs works in that mode
(a style per cell, frozen panes, autofilter, column widths, row heights, print
titles, print areas, page breaks, merged cells, internal hyperlinks, native
charts). It cannot read cells back or auto-fit, so widths and the heights of
rows with wrapped text are computed here.

The detail sheets' data rows, nearly all the cells, skip openpyxl's per-cell
objects: ``report.fast_rows`` renders them as XML into temporary files of
their own, and ``_FixedTimeZip`` splices each into its sheet, in place of a
placeholder row, when openpyxl copies the sheet into the zip.

Detail sheets hold at most ``max_detail_rows`` rows (never more than Excel's
1,048,576 per sheet); the Summary says how many rows are not shown and names
the CSV file that has them all. Every string from input is written as text
(never a formula) and stripped of characters a worksheet can't hold.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from zipfile import ZIP_DEFLATED, ZipFile, ZipInfo

import polars as pl
from openpyxl.writer.excel import ExcelWriter

from report.atomic import atomic_path
from report.fast_rows import DataRows, split_at_placeholder
from report.guideline_sheet import citation, write_guideline
from report.model import (
    DEFAULT_MAX_DETAIL_ROWS,
    FILE_NAMES,
    SHEET_CYCLES,
    SHEET_EXCEPTIONS,
    SHEET_GUIDELINE,
    SHEET_OUT_OF_SCOPE,
    SHEET_REJECTED,
    SHEET_SUMMARY,
    ReportData,
    WorkbookStats,
)
from report.ordering import sorted_cycles_in_period, sorted_findings, sorted_out_of_scope, sorted_rejected
from report.sheets import EXCEL_MAX_COLUMNS, FIRST_DATA_ROW, MAX_DATA_ROWS, Column, DetailResult, SheetWriter
from report.summary_sheet import write_summary
from report.xlsx_cells import excel_datetime

EXCEPTION_COLUMNS: Final = (
    Column("Severity", "severity", 9, "severity"),
    Column("Rule", "rule_code", 33),
    Column("Patient", "patient_id", 13),
    Column("Course", "course_id", 14),
    Column("Cycle no.", "cycle_number", 7, "int"),
    Column("Cycle start", "cycle_start", 12, "date"),
    Column("Observed", "observed", 10, "unit", unit_from="unit"),
    Column("Limit", "limit", 9, "unit", unit_from="unit"),
    Column("Unit", "unit", 8),
    Column("Excess (g)", "excess_g", 9, "g"),
    Column("Message", "message", 58, "wrap"),
    Column("Cycle row", "__link", 12, "link", link_sheet=SHEET_CYCLES, link_csv=FILE_NAMES["cycles"]),
    Column("What the rule checks", "__description", 60),
    Column("Guideline source", "__citation", 60),
    Column("Administration IDs", "__admin_ids", 30),
)
#: Printed pages carry columns A-K (up to Message); the reference columns stay on screen.
EXCEPTIONS_PRINT_COLUMNS: Final = 11

CYCLE_COLUMNS: Final = (
    Column("Patient", "patient_id", 13),
    Column("Course", "course_id", 14),
    Column("Cycle no.", "cycle_number", 7, "int"),
    Column("Cycle start", "cycle_start", 12, "date"),
    Column("Cycle end", "cycle_end", 12, "date"),
    Column("Dosing weight (kg)", "dosing_weight_kg", 9, "kg"),
    Column("Weight basis", "__weight_basis", 13),
    Column("Actual weight (kg)", "actual_weight_kg", 9, "kg"),
    Column("IBW (kg)", "ibw_kg", 8, "kg"),
    Column("Height (cm)", "height_cm", 8, "kg"),
    Column("Sex", "sex", 5),
    Column("Age (years)", "age_years", 8, "int"),
    Column("Total (g)", "total_g", 9, "g"),
    Column("Dose (g/kg)", "g_per_kg", 8, "gkg"),
    Column("Highest daily dose (g/kg)", "max_daily_g_per_kg", 10, "gkg"),
    Column("Infusion days", "infusion_days", 9, "int"),
    Column("Interval (days)", "interval_days", 9, "int"),
    Column("IgA status", "iga_status", 12),
    Column("IgA result taken", "iga_collected_at", 17, "datetime"),
    Column("IgA (mg/dL)", "iga_mg_dl", 9, "censored", qualifier_from="iga_censor"),
    Column("Products", "products", 22),
    Column("Exceptions", "exception_count", 11, "int"),
    Column("Admin-istrations", "administrations", 9, "int"),
    Column("Highest daily dose (g)", "max_daily_g", 10, "g"),
    Column("Largest gap between days (days)", "max_gap_days", 10, "int"),
    Column("IgA-reduced products only", "is_iga_reduced_only", 10, "yesno"),
    Column("Review in window (cycle 7 on)", "has_review_in_window", 11, "yesno"),
    Column("First administration", "first_admin_at", 17, "datetime"),
    Column("Administration IDs", "__admin_ids", 30),
)
#: Printed pages carry columns A-V (up to Exceptions); the rest stays on screen.
CYCLES_PRINT_COLUMNS: Final = 22

OUT_OF_SCOPE_COLUMNS: Final = (
    Column("Source file", "source_file", 24),
    Column("Line", "source_row", 8, "int"),
    Column("Reason", "__reason", 32),
    Column("Indication", "indication", 30),
    Column("Admin ID", "admin_id", 14),
    Column("Patient", "patient_id", 13),
    Column("Administered at", "administered_at", 17, "datetime"),
    Column("Product", "product", 16),
    Column("Dose (g)", "dose_g", 9, "g"),
    Column("Weight (kg)", "weight_kg", 9, "kg"),
    Column("Height (cm)", "height_cm", 9, "kg"),
    Column("Sex", "sex", 5),
    Column("Birth date", "birth_date", 12, "date"),
    Column("Site", "site", 14),
    Column("Infusion rate (mg/kg/min)", "infusion_rate_mg_kg_min", 10, "gkg"),
)
OUT_OF_SCOPE_REASON: Final = "indication is not dermatomyositis"


# --------------------------------------------------------------------- helpers
def _cap(max_detail_rows: int) -> int:
    return max(0, min(int(max_detail_rows), MAX_DATA_ROWS))


def _height(lf: pl.LazyFrame) -> int:
    return int(lf.select(pl.len()).collect().item())


def _joined(column: str) -> pl.Expr:
    return pl.col(column).list.eval(pl.element().cast(pl.String)).list.join("; ")


def _shown_note(shown: int, total: int, noun: str, order: str, csv_name: str) -> str:
    if total == 0:
        return f"No {noun}."
    if shown == total:
        return f"All {total:,} {noun}, {order}. The same rows are in {csv_name}."
    return (
        f"Showing the first {shown:,} of {total:,} {noun} ({order}); {total - shown:,} rows not shown. "
        f"The complete list is in {csv_name}."
    )


def _rule_reference(data: ReportData) -> pl.LazyFrame:
    guideline = data.guideline
    rows = [
        (code, rule.description, f"{rule.source}: {citation(guideline, rule.source)}")
        for code, rule in guideline.rules.items()
    ]
    schema = {"rule_code": pl.String, "__description": pl.String, "__citation": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row").lazy()


def _cycle_rows(cycles_sorted: pl.LazyFrame, shown: int) -> pl.LazyFrame:
    """Cycle key -> its row on the Cycles sheet, or -1 when the sheet does not show it.

    The Cycles sheet shows the first ``shown`` of ``cycles_sorted``; only those
    are numbered (a top-k, not a sort of every cycle), the others are -1.
    """
    keys = ["patient_id", "course_id", "cycle_number"]
    listed = (
        cycles_sorted.head(shown)
        .select(keys)
        .with_row_index("__pos")
        .unique(subset=keys, keep="first", maintain_order=True)
        .select(*keys, (pl.col("__pos").cast(pl.Int64) + FIRST_DATA_ROW).alias("__link"))
    )
    beyond = (
        cycles_sorted.select(keys)
        .unique()
        .join(listed, on=keys, how="anti")
        .with_columns(pl.lit(-1, dtype=pl.Int64).alias("__link"))
    )
    return pl.concat([listed, beyond])


# --------------------------------------------------------------------- sheets
def _write_exceptions(writer: SheetWriter, cap: int, cycles_sorted: pl.LazyFrame, cycles_shown: int) -> DetailResult:
    data = writer.data
    findings = sorted_findings(data.findings)
    total = _height(findings)
    shown = min(total, cap)
    frame = (
        findings.head(shown)
        .with_row_index("__order")
        .join(_rule_reference(data), on="rule_code", how="left")
        .join(
            _cycle_rows(cycles_sorted, cycles_shown),
            on=["patient_id", "course_id", "cycle_number"],
            how="left",
        )
        .sort("__order")
        .with_columns(_joined("admin_ids").alias("__admin_ids"))
        .collect()
    )
    order = "highest severity first, then patient and cycle start"
    note = _shown_note(shown, total, "exceptions", order, FILE_NAMES["exceptions"])
    if total:
        note += " Printed pages show columns A-K; rule descriptions and sources are in columns M-N."
    return writer.detail_sheet(
        SHEET_EXCEPTIONS,
        title=f"Exceptions ({total:,})",
        note=note,
        columns=EXCEPTION_COLUMNS,
        frame=frame,
        total_rows=total,
        freeze="C4",
        print_columns=EXCEPTIONS_PRINT_COLUMNS,
        valign="top",
    )


def _write_cycles(writer: SheetWriter, cycles_sorted: pl.LazyFrame, total: int, shown: int) -> DetailResult:
    frame = (
        cycles_sorted.head(shown)
        .with_columns(
            _joined("admin_ids").alias("__admin_ids"),
            pl.col("weight_basis").str.replace_all("_", " ").alias("__weight_basis"),
        )
        .collect()
    )
    note = _shown_note(
        shown, total, "cycles starting in the audit period", "by patient, course and cycle", FILE_NAMES["cycles"]
    )
    if total:
        note += " Printed pages show columns A-V."
    return writer.detail_sheet(
        SHEET_CYCLES,
        title=f"Cycles audited ({total:,})",
        note=note,
        columns=CYCLE_COLUMNS,
        frame=frame,
        total_rows=total,
        freeze="D4",
        print_columns=CYCLES_PRINT_COLUMNS,
    )


def _text_width(frame: pl.DataFrame, name: str) -> float:
    """A readable width for a text column: its longest value or header, 8 to 40 characters."""
    longest = 0
    if frame.height and frame.schema[name] == pl.String:
        longest = int(frame.select(pl.col(name).str.len_chars().max()).item() or 0)
    return float(min(40, max(8, len(name) + 2, longest + 2)))


def _write_rejected(writer: SheetWriter, cap: int) -> DetailResult:
    rejected = sorted_rejected(writer.data.rejected)
    total = _height(rejected)
    shown = min(total, cap)
    frame = rejected.head(shown).collect()
    keys = ("source_file", "source_row", "reason")
    originals = [n for n in frame.columns if n not in keys][: EXCEL_MAX_COLUMNS - len(keys)]
    columns = [
        Column("Source file", "source_file", 24),
        Column("Line", "source_row", 8, "int"),
        Column("Reason", "reason", 44),
        *(Column(name, name, _text_width(frame, name)) for name in originals),
    ]
    note = _shown_note(shown, total, "rejected input rows", "by file and line", FILE_NAMES["rejected"])
    if total:
        note += " The columns after Reason hold the row's original values, as text."
    return writer.detail_sheet(
        SHEET_REJECTED,
        title=f"Rejected input rows ({total:,})",
        note=note,
        columns=columns,
        frame=frame,
        total_rows=total,
        freeze="D4",
    )


def _write_out_of_scope(writer: SheetWriter, cap: int) -> DetailResult:
    rows = sorted_out_of_scope(writer.data.out_of_scope)
    total = _height(rows)
    shown = min(total, cap)
    frame = rows.head(shown).with_columns(pl.lit(OUT_OF_SCOPE_REASON).alias("__reason")).collect()
    note = _shown_note(
        shown,
        total,
        "valid administrations for another indication (counted, not audited)",
        "by file and line",
        FILE_NAMES["out_of_scope"],
    )
    return writer.detail_sheet(
        SHEET_OUT_OF_SCOPE,
        title=f"Out-of-scope administrations ({total:,})",
        note=note,
        columns=OUT_OF_SCOPE_COLUMNS,
        frame=frame,
        total_rows=total,
        freeze="C4",
    )


# --------------------------------------------------------------------- saving
class _FixedTimeZip(ZipFile):
    """A zip whose entries all carry one timestamp, so equal reports are equal bytes.

    openpyxl copies each write-only sheet from its temporary file with ``write``;
    a sheet in ``splices`` gets its rendered data rows in place of its placeholder row.
    """

    def __init__(self, path: Path, stamp: datetime, splices: Mapping[str, DataRows] | None = None) -> None:
        super().__init__(path, "w", ZIP_DEFLATED, allowZip64=True)
        year = min(max(stamp.year, 1980), 2107)
        self._stamp = (year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
        self._splices = dict(splices or {})

    def _info(self, arcname: str) -> ZipInfo:
        info = ZipInfo(arcname, date_time=self._stamp)
        info.compress_type = ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        return info

    def writestr(self, zinfo_or_arcname: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        if isinstance(zinfo_or_arcname, str):
            zinfo_or_arcname = self._info(zinfo_or_arcname)
        super().writestr(zinfo_or_arcname, data, *args, **kwargs)

    def write(self, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        info = self._info(str(arcname if arcname is not None else filename))
        rows = self._splices.pop(str(filename), None)
        if rows is not None:
            head, tail = split_at_placeholder(str(filename), rows)
            info.file_size = len(head) + rows.size() + len(tail)
            with self.open(info, "w", force_zip64=True) as dst:
                dst.write(head)
                rows.copy_to(dst)
                dst.write(tail)
            rows.discard()
            return
        info.file_size = os.path.getsize(filename)
        with open(filename, "rb") as src, self.open(info, "w", force_zip64=True) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

    def check_spliced(self) -> None:
        """Every sheet with rendered data rows was written (else those rows would be missing)."""
        if self._splices:
            raise RuntimeError(f"{len(self._splices)} sheet(s) saved without their data rows")


def _save(writer: SheetWriter, path: Path, generated_at: datetime) -> None:
    """Save atomically, with document properties and zip entry times set to ``generated_at``."""
    stamp = generated_at
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC).replace(tzinfo=None)  # docProps times are UTC
    props = writer.wb.properties
    props.created = props.modified = stamp
    props.creator = props.lastModifiedBy = "ivig-audit"
    props.title = "IVIG audit report"
    profile = writer.data.guideline.profile
    props.subject = f"IVIG for dermatomyositis, guideline {profile.name} {profile.version}"
    with atomic_path(path) as tmp:
        archive = _FixedTimeZip(tmp, excel_datetime(generated_at), writer.data_rows)
        try:
            ExcelWriter(writer.wb, archive).save()  # not wb.save(): that stamps the current time
            archive.check_spliced()
        finally:
            archive.close()


def write_workbook(data: ReportData, path: Path, *, max_detail_rows: int = DEFAULT_MAX_DETAIL_ROWS) -> WorkbookStats:
    """Write the workbook to ``path`` (atomically); return rows written and not shown per sheet.

    ``rows_written`` counts data rows for the detail sheets and all rows for
    Summary and Guideline; ``rows_not_shown`` covers the detail sheets.
    """
    path = Path(path)
    cap = _cap(max_detail_rows)
    writer = SheetWriter(data)
    try:
        cycles_sorted = sorted_cycles_in_period(data.cycles)  # the Cycles sheet, which the exceptions link into
        cycles_total = _height(cycles_sorted)
        cycles_shown = min(cycles_total, cap)
        details = {
            SHEET_EXCEPTIONS: _write_exceptions(writer, cap, cycles_sorted, cycles_shown),
            SHEET_CYCLES: _write_cycles(writer, cycles_sorted, cycles_total, cycles_shown),
            SHEET_REJECTED: _write_rejected(writer, cap),
            SHEET_OUT_OF_SCOPE: _write_out_of_scope(writer, cap),
        }
        summary_rows = write_summary(writer, details)
        guideline_rows = write_guideline(writer)
        _save(writer, path, data.generated_at)
    except BaseException:
        writer.discard()
        raise
    finally:
        writer.remove_data_rows()
    return WorkbookStats(
        rows_written={
            SHEET_SUMMARY: summary_rows,
            **{name: d.rows_written for name, d in details.items()},
            SHEET_GUIDELINE: guideline_rows,
        },
        rows_not_shown={name: d.rows_not_shown for name, d in details.items()},
    )
