"""Load the documented reassessments: read, de-duplicate, parse, check rows, quarantine."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pandera.polars as pa
import polars as pl

from audit.frames import REVIEWS
from validators import parsing as p
from validators.io import REVIEW_OPTIONAL, REVIEW_REQUIRED, Loaded, read_table
from validators.quarantine import (
    Field,
    Problem,
    duplicate_rows,
    find_problems,
    quarantine,
    raw_copies,
    require_columns,
    with_optional,
)
from validators.schemas import REVIEWS_SCHEMA

__all__ = ["Loaded", "load_reviews", "validate_reviews"]


def load_reviews(path: Path, *, mapping: Mapping[str, str] | None = None, now: datetime) -> Loaded:
    """Read and validate reviews into ``audit.frames.REVIEWS``.

    ``reviewed_on`` is a date (a date-time gives its date); a date after
    ``now``'s date is rejected. Raises ``InputError`` when the file can't be
    read or lacks a required column.
    """
    return validate_reviews(read_table(path, mapping), path, now=now)


def validate_reviews(table: pl.DataFrame, path: Path, *, now: datetime) -> Loaded:
    """``load_reviews`` after the read: ``table`` is ``read_table(path, mapping)``'s all-text frame."""
    now = p.local_now(now)
    require_columns(table, REVIEW_REQUIRED, path)
    staged = stage(with_optional(table, REVIEW_OPTIONAL))
    return quarantine(
        table=table,
        staged=staged,
        reasons=find_problems(staged, fields(now)),
        output=REVIEWS,
        output_schema=REVIEWS_SCHEMA,
        duplicate=duplicate_rows(table),
    )


def stage(table: pl.DataFrame) -> pl.DataFrame:
    """Typed staging columns next to raw copies of the canonical columns."""
    return table.select(
        "source_file",
        "source_row",
        *raw_copies((*REVIEW_REQUIRED, *REVIEW_OPTIONAL)),
        p.text("patient_id").alias("patient_id"),
        p.local_date("reviewed_on").alias("reviewed_on"),
        p.text("note").alias("note"),
    )


def fields(now: datetime) -> list[Field]:
    """The row checks, in the order reasons are listed."""
    today = now.date()
    return [
        Field("patient_id", pl.String(), missing=p.missing("patient_id")),
        Field(
            "reviewed_on",
            pl.Date(),
            missing=p.required_or("reviewed_on", p.not_a_date("reviewed_on")),
            problems=(
                Problem(
                    pa.Check.le(today, error="reviewed_on <= today"),
                    p.reason("reviewed_on", p.quoted("reviewed_on"), f" is in the future (after {today.isoformat()})"),
                ),
            ),
        ),
    ]
