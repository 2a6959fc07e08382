"""Administrations -> infusion days -> cycles -> courses (pure polars).

Terms (GUIDELINE.md):
- an infusion day is the calendar date of ``administered_at``; a patient's doses on
  one date are summed;
- a day joins the current cycle when it is at most ``cycle_gap_max_days`` after the
  previous infusion day, otherwise it starts a new cycle;
- a cycle joins the current course when its start is at most ``course_gap_max_days``
  after the previous cycle's start, otherwise it starts a new course.
"""

from __future__ import annotations

import polars as pl

from audit.guideline import Guideline

_ORDER = ["administered_at", "admin_id"]


def _days_between(later: pl.Expr, earlier: pl.Expr) -> pl.Expr:
    return (later - earlier).dt.total_days()


def in_scope_mask(guideline: Guideline) -> pl.Expr:
    """True where ``indication`` is dermatomyositis by ICD-10-CM code or by text."""
    text = pl.col("indication").str.strip_chars()
    code = text.str.to_uppercase().str.replace_all(".", "", literal=True)
    by_code = pl.lit(False)
    for prefix in guideline.scope.icd10_prefixes:
        by_code = by_code | code.str.starts_with(prefix.upper().replace(".", ""))
    by_text = pl.lit(False)
    for term in guideline.scope.text_terms:
        by_text = by_text | text.str.to_lowercase().str.contains(term.lower(), literal=True)
    return (by_code | by_text).fill_null(False)


def assign_cycles(admins: pl.DataFrame, guideline: Guideline) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Group administrations into infusion days and cycles.

    Returns ``(admins, days)``: the administrations with ``day`` and ``cycle_seq``
    (1, 2, ... per patient over all history) added, and one row per infusion day with
    ``day_g``, ``gap_days`` (to the previous infusion day in the same cycle, null on a
    cycle's first day) and its ``admin_ids`` in administration order.
    """
    gap_max = guideline.value("cycle_gap_max_days")
    admins = admins.with_columns(day=pl.col("administered_at").dt.date())
    days = (
        admins.sort(["patient_id", *_ORDER])
        .group_by("patient_id", "day", maintain_order=True)
        .agg(
            day_g=pl.col("dose_g").sum(),
            admin_ids=pl.col("admin_id"),
        )
        .sort("patient_id", "day")
        .with_columns(gap_days=_days_between(pl.col("day"), pl.col("day").shift(1).over("patient_id")))
        .with_columns(
            cycle_seq=(pl.col("gap_days").is_null() | (pl.col("gap_days") > gap_max))
            .cast(pl.Int64)
            .cum_sum()
            .over("patient_id")
        )
        .with_columns(
            gap_days=pl.when(pl.col("day") == pl.col("day").min().over("patient_id", "cycle_seq"))
            .then(None)
            .otherwise(pl.col("gap_days"))
        )
    )
    admins = admins.join(days.select("patient_id", "day", "cycle_seq"), on=["patient_id", "day"], how="left")
    return admins, days


def build_cycles(admins: pl.DataFrame, days: pl.DataFrame, guideline: Guideline) -> pl.DataFrame:
    """One row per cycle with its course, numbering, interval and first-administration facts."""
    course_gap = guideline.value("course_gap_max_days")
    reduced = [p.name for p in guideline.products if p.is_iga_reduced]
    by_day = days.group_by("patient_id", "cycle_seq").agg(
        cycle_start=pl.col("day").min(),
        cycle_end=pl.col("day").max(),
        infusion_days=pl.len().cast(pl.Int64),
        total_g=pl.col("day_g").sum(),
        max_daily_g=pl.col("day_g").max(),
        max_gap_days=pl.col("gap_days").max(),
    )
    first = (
        admins.sort(["patient_id", "cycle_seq", *_ORDER])
        .group_by("patient_id", "cycle_seq", maintain_order=True)
        .agg(
            first_admin_at=pl.col("administered_at").first(),
            actual_weight_kg=pl.col("weight_kg").first(),
            height_cm=pl.col("height_cm").first(),
            sex=pl.col("sex").first(),
            birth_date=pl.col("birth_date").first(),
            administrations=pl.len().cast(pl.Int64),
            admin_ids=pl.col("admin_id"),
            products=pl.col("product").unique().sort().str.join("; "),
            is_iga_reduced_only=pl.col("product").is_in(reduced).all(),
        )
    )
    cycles = (
        by_day.join(first, on=["patient_id", "cycle_seq"], how="inner")
        .sort("patient_id", "cycle_start")
        .with_columns(start_gap=_days_between(pl.col("cycle_start"), pl.col("cycle_start").shift(1).over("patient_id")))
        .with_columns(
            course_n=(pl.col("start_gap").is_null() | (pl.col("start_gap") > course_gap))
            .cast(pl.Int64)
            .cum_sum()
            .over("patient_id")
        )
        .with_columns(cycle_number=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("patient_id", "course_n"))
        .with_columns(
            course_id=pl.format("{}-C{}", pl.col("patient_id"), pl.col("course_n")),
            interval_days=pl.when(pl.col("cycle_number") > 1).then(pl.col("start_gap")).otherwise(None),
        )
        .drop("start_gap")
    )
    return cycles
