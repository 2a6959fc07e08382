"""The machine outputs: exceptions.csv, cycles.csv, rejected_rows.csv, out_of_scope_rows.csv, summary.json.

CSV files are UTF-8 with a header row (also with zero rows), complete at any
size (polars streams them), sorted deterministically, and written under a
temporary name that is renamed into place at the end. Values are written as
they are: these files are for programs; the workbook is the human view.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final

import polars as pl

from report.atomic import atomic_path
from report.ordering import (
    sorted_cycles_in_period,
    sorted_findings,
    sorted_out_of_scope,
    sorted_rejected,
)

#: exceptions.csv: the contract's columns, then the extensions.
EXCEPTIONS_COLUMNS: Final = (
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
)
#: cycles.csv starts with these (the contract's minimum), then every other cycle column.
CYCLES_LEADING_COLUMNS: Final = (
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
)
#: Internal flag, true on every written row, so it is not repeated in cycles.csv.
CYCLES_DROPPED_COLUMNS: Final = ("in_period",)

ID_SEPARATOR: Final = ";"
DATE_FORMAT: Final = "%Y-%m-%d"
#: ISO 8601; fractional seconds only when there are some.
DATETIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S%.f"


def _flatten_lists(lf: pl.LazyFrame) -> pl.LazyFrame:
    """Join every list column's items with ``;`` (CSV has no nested values)."""
    schema = lf.collect_schema()
    lists = [name for name, dtype in schema.items() if isinstance(dtype, pl.List)]
    if not lists:
        return lf
    return lf.with_columns(
        pl.col(name).list.eval(pl.element().cast(pl.String)).list.join(ID_SEPARATOR) for name in lists
    )


def _sink(lf: pl.LazyFrame, path: Path) -> int:
    """Stream ``lf`` to ``path`` as CSV, atomically; return the number of data rows."""
    rows = int(lf.select(pl.len()).collect().item())
    with atomic_path(path) as tmp:
        lf.sink_csv(
            tmp,
            include_header=True,
            date_format=DATE_FORMAT,
            datetime_format=DATETIME_FORMAT,
            check_extension=False,
        )
    return rows


def write_exceptions_csv(findings: pl.DataFrame, path: Path) -> int:
    """exceptions.csv: one row per exception, severity high first; returns rows written."""
    lf = sorted_findings(findings).select(EXCEPTIONS_COLUMNS)
    return _sink(_flatten_lists(lf), Path(path))


def write_cycles_csv(cycles: pl.DataFrame, path: Path) -> int:
    """cycles.csv: cycles whose ``in_period`` is true, by patient, course and cycle; returns rows."""
    lf = sorted_cycles_in_period(cycles)
    names = lf.collect_schema().names()
    rest = [n for n in names if n not in CYCLES_LEADING_COLUMNS and n not in CYCLES_DROPPED_COLUMNS]
    lf = lf.select([*CYCLES_LEADING_COLUMNS, *rest])
    return _sink(_flatten_lists(lf), Path(path))


def write_rejected_csv(rejected: pl.DataFrame, path: Path) -> int:
    """rejected_rows.csv: source_file, source_row, reason, then the row's original values."""
    return _sink(_flatten_lists(sorted_rejected(rejected)), Path(path))


def write_out_of_scope_csv(rows: pl.DataFrame, path: Path) -> int:
    """out_of_scope_rows.csv: valid administrations whose indication is not dermatomyositis."""
    return _sink(_flatten_lists(sorted_out_of_scope(rows)), Path(path))


def _json_ready(value: Any) -> Any:
    """``value`` with NaN/infinity as null and dates as ISO text (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    return value


def write_summary_json(summary: dict[str, Any], path: Path) -> None:
    """summary.json: the summary as given (indent 2, key order kept, UTF-8), newline at the end."""
    text = json.dumps(_json_ready(summary), indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
