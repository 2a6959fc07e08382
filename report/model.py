"""What the report writers receive and return."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import polars as pl

from audit.guideline import Guideline

#: Most data rows per workbook detail sheet unless the run says otherwise (highest severity first).
#: Nobody acts on more rows in a spreadsheet, and the workbook's time and size grow with the rows
#: shown (about 30,000 detail rows a second); the CSV files always hold everything.
DEFAULT_MAX_DETAIL_ROWS: Final = 10_000

#: Output file names in ``--out DIR`` (CONTRACT.md); the workbook names the CSVs.
FILE_NAMES: Final[dict[str, str]] = {
    "workbook": "ivig_audit_report.xlsx",
    "exceptions": "exceptions.csv",
    "cycles": "cycles.csv",
    "rejected": "rejected_rows.csv",
    "out_of_scope": "out_of_scope_rows.csv",
    "summary": "summary.json",
}

#: Workbook sheets, in order.
SHEET_SUMMARY: Final = "Summary"
SHEET_EXCEPTIONS: Final = "Exceptions"
SHEET_CYCLES: Final = "Cycles"
SHEET_REJECTED: Final = "Rejected rows"
SHEET_OUT_OF_SCOPE: Final = "Out of scope"
SHEET_GUIDELINE: Final = "Guideline"
SHEET_ORDER: Final = (
    SHEET_SUMMARY,
    SHEET_EXCEPTIONS,
    SHEET_CYCLES,
    SHEET_REJECTED,
    SHEET_OUT_OF_SCOPE,
    SHEET_GUIDELINE,
)
#: Detail sheets (may be truncated) and the CSV that always holds all their rows.
DETAIL_SHEET_FILES: Final[dict[str, str]] = {
    SHEET_EXCEPTIONS: FILE_NAMES["exceptions"],
    SHEET_CYCLES: FILE_NAMES["cycles"],
    SHEET_REJECTED: FILE_NAMES["rejected"],
    SHEET_OUT_OF_SCOPE: FILE_NAMES["out_of_scope"],
}


@dataclass(frozen=True)
class ReportData:
    """Everything one report needs; the writers format it and compute nothing new."""

    findings: pl.DataFrame  # audit.frames.FINDINGS
    cycles: pl.DataFrame  # audit.frames.CYCLES; only in_period rows are reported
    rejected: pl.DataFrame  # audit.frames.REJECTED_KEYS, then the original columns (String)
    out_of_scope: pl.DataFrame  # audit.frames.INFUSIONS: valid rows of another indication
    summary: dict[str, Any]  # JSON-ready run summary (see audit.summary.build_summary)
    guideline: Guideline
    generated_at: datetime  # the report timestamp; report code never reads the clock


@dataclass(frozen=True)
class WorkbookStats:
    """Rows written to each sheet and rows left out of each detail sheet (cap)."""

    rows_written: dict[str, int] = field(default_factory=dict)
    rows_not_shown: dict[str, int] = field(default_factory=dict)

    @property
    def is_truncated(self) -> bool:
        """True when some detail sheet does not show all of its rows."""
        return any(n > 0 for n in self.rows_not_shown.values())

    def as_dict(self) -> dict[str, dict[str, int]]:
        """JSON-ready copy for summary.json."""
        return {"rows_written": dict(self.rows_written), "rows_not_shown": dict(self.rows_not_shown)}
