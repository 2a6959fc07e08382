"""Schedule rules: days within a cycle, intervals between cycles, course length."""

from __future__ import annotations

import polars as pl

from audit.guideline import Guideline
from audit.rules.base import RuleInput, hits


def days_not_consecutive(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """DAYS_NOT_CONSECUTIVE: two successive infusion days more than max_gap_within_cycle_days apart."""
    limit = g.value("max_gap_within_cycle_days")
    rows = t.cycles.filter(pl.col("max_gap_days") > limit)
    return hits(
        rows,
        observed=pl.col("max_gap_days"),
        limit=limit,
        unit="days",
        message=pl.format(
            "infusion days {} days apart within the cycle; expected consecutive days (at most {} day apart)",
            pl.col("max_gap_days"),
            pl.lit(int(limit)),
        ),
    )


def too_many_infusion_days(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """TOO_MANY_INFUSION_DAYS: more than max_infusion_days infusion days in the cycle."""
    limit = g.value("max_infusion_days")
    rows = t.cycles.filter(pl.col("infusion_days") > limit)
    return hits(
        rows,
        observed=pl.col("infusion_days"),
        limit=limit,
        unit="infusion days",
        message=pl.format(
            "{} infusion days in the cycle; at most {} daily doses expected",
            pl.col("infusion_days"),
            pl.lit(int(limit)),
        ),
    )


def cycle_interval_short(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """CYCLE_INTERVAL_SHORT: cycle >= 2 starting fewer than min_interval_days after the previous start."""
    limit = g.value("min_interval_days")
    rows = t.cycles.filter(pl.col("interval_days") < limit)
    return hits(
        rows,
        observed=pl.col("interval_days"),
        limit=limit,
        unit="days",
        message=pl.format(
            "cycle started {} days after the previous cycle's start; expected at least {} days",
            pl.col("interval_days"),
            pl.lit(int(limit)),
        ),
    )


def cycle_interval_long(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """CYCLE_INTERVAL_LONG: cycle >= 2 starting more than max_interval_days after the previous start."""
    limit = g.value("max_interval_days")
    rows = t.cycles.filter(pl.col("interval_days") > limit)
    return hits(
        rows,
        observed=pl.col("interval_days"),
        limit=limit,
        unit="days",
        message=pl.format(
            "cycle started {} days after the previous cycle's start; expected at most {} days",
            pl.col("interval_days"),
            pl.lit(int(limit)),
        ),
    )


def course_beyond_cycles_no_review(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """COURSE_BEYOND_6_CYCLES_NO_REVIEW: the first cycle past the maximum, with no review in the window."""
    max_cycles = int(g.value("max_cycles_without_review"))
    window_from = int(g.value("review_window_start_cycle"))
    rows = t.cycles.filter(
        (pl.col("cycle_number") == max_cycles + 1) & ~pl.col("has_review_in_window").fill_null(False)
    )
    return hits(
        rows,
        observed=pl.col("cycle_number"),
        limit=max_cycles,
        unit="cycles",
        message=pl.format(
            "cycle {} of the course with no reassessment recorded "
            "between the start of cycle {} and the start of cycle {}",
            pl.col("cycle_number"),
            pl.lit(window_from),
            pl.col("cycle_number"),
        ),
    )
