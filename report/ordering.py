"""Row selection and ordering shared by the CSV files and the workbook.

The engine does not promise a row order, so every writer sorts, with enough
tie-breakers that equal inputs always give byte-equal outputs.
"""

from __future__ import annotations

import polars as pl

from audit.frames import CYCLES, FINDINGS, INFUSIONS, REJECTED_KEYS
from audit.guideline import SEVERITY_ORDER

#: Rank of a severity not in SEVERITY_ORDER (sorted after "low", never dropped).
UNKNOWN_SEVERITY_RANK = len(SEVERITY_ORDER)


def conform(frame: pl.DataFrame | pl.LazyFrame, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """``frame`` with every ``schema`` column present (missing ones as typed nulls), extras after."""
    lf = frame.lazy()
    names = lf.collect_schema().names()
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in names]
    if missing:
        lf = lf.with_columns(missing)
    extras = [n for n in names if n not in schema]
    return lf.select([*schema, *extras])


def severity_rank() -> pl.Expr:
    """0 for high, 1 medium, 2 low, 3 anything else."""
    return pl.col("severity").replace_strict(SEVERITY_ORDER, default=UNKNOWN_SEVERITY_RANK, return_dtype=pl.Int64)


def course_number() -> pl.Expr:
    """n of a course id ``<patient>-C<n>`` (so C10 sorts after C9); null if not that shape."""
    return pl.col("course_id").str.extract(r"-C(\d+)$", 1).cast(pl.Int64, strict=False)


def sorted_findings(findings: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Exceptions by severity (high first), patient, cycle start, rule code, then tie-breakers."""
    return (
        conform(findings, FINDINGS)
        .with_columns(severity_rank().alias("__rank"), course_number().alias("__course"))
        .sort(
            ["__rank", "patient_id", "cycle_start", "rule_code", "__course", "course_id", "cycle_number", "message"],
            nulls_last=True,
            maintain_order=True,
        )
        .drop("__rank", "__course")
    )


def sorted_cycles_in_period(cycles: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Cycles with ``in_period`` true, by patient, course (numerically) and cycle number."""
    return (
        conform(cycles, CYCLES)
        .filter(pl.col("in_period").fill_null(False))
        .with_columns(course_number().alias("__course"))
        .sort(
            ["patient_id", "__course", "course_id", "cycle_number", "cycle_start"],
            nulls_last=True,
            maintain_order=True,
        )
        .drop("__course")
    )


def sorted_rejected(rejected: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Rejected rows by file, line and reason; original columns keep their order."""
    return conform(rejected, REJECTED_KEYS).sort(
        ["source_file", "source_row", "reason"], nulls_last=True, maintain_order=True
    )


def sorted_out_of_scope(rows: pl.DataFrame | pl.LazyFrame) -> pl.LazyFrame:
    """Out-of-scope administrations by file and line."""
    return conform(rows, INFUSIONS).sort(
        ["source_file", "source_row", "admin_id"], nulls_last=True, maintain_order=True
    )
