"""What every rule receives and how it reports: one findings shape for all rules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from audit.guideline import Guideline


@dataclass(frozen=True)
class RuleInput:
    """The tables a rule may read. Rules never see files, the clock or Prefect.

    ``cycles``: one row per cycle to report on (the audit period), with every column of
    ``audit.frames.CYCLES`` computed from all history, and ``cycle_seq``, an integer that
    identifies the cycle. ``days``: one row per infusion day of those cycles (``cycle_seq,
    patient_id, course_id, cycle_number, day, day_g, day_g_per_kg, gap_days, admin_ids``).
    """

    cycles: pl.DataFrame
    days: pl.DataFrame


#: A rule: the cycles it fires on, as partial findings (see ``hits``).
RuleFn = Callable[[RuleInput, Guideline], pl.DataFrame]

HIT_COLUMNS = (
    "patient_id",
    "course_id",
    "cycle_number",
    "cycle_start",
    "observed",
    "limit",
    "unit",
    "excess_g",
    "message",
    "admin_ids",
)


def fmt(expr: pl.Expr, decimals: int = 2) -> pl.Expr:
    """A number as text for messages, rounded for reading."""
    return expr.round(decimals).cast(pl.String)


def hits(
    rows: pl.DataFrame,
    *,
    observed: pl.Expr | None,
    limit: pl.Expr | float | None,
    unit: str,
    message: pl.Expr,
    excess_g: pl.Expr | None = None,
    admin_ids: pl.Expr | None = None,
) -> pl.DataFrame:
    """Shape the cycles a rule fired on into partial finding rows."""

    def num(value: pl.Expr | float | None) -> pl.Expr:
        if value is None:
            return pl.lit(None, dtype=pl.Float64)
        return value.cast(pl.Float64) if isinstance(value, pl.Expr) else pl.lit(float(value))

    return rows.select(
        "patient_id",
        "course_id",
        "cycle_number",
        "cycle_start",
        observed=num(observed),
        limit=num(limit),
        unit=pl.lit(unit or None, dtype=pl.String),
        excess_g=num(excess_g),
        message=message,
        admin_ids=admin_ids if admin_ids is not None else pl.col("admin_ids"),
    )
