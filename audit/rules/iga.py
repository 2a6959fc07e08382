"""IgA rules: screening before a course, reduced-IgA product after a deficient result."""

from __future__ import annotations

import polars as pl

from audit.guideline import Guideline
from audit.rules.base import RuleInput, fmt, hits

DEFICIENT = "deficient"
NORMAL = "normal"
NOT_SCREENED = "not screened"


def iga_not_screened(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """IGA_NOT_SCREENED: a course's first cycle with no IgA result at or before its first administration."""
    rows = t.cycles.filter((pl.col("cycle_number") == 1) & (pl.col("iga_status") == NOT_SCREENED))
    return hits(
        rows,
        observed=None,
        limit=None,
        unit="",
        message=pl.format(
            "no serum IgA result collected at or before the course's first administration ({})",
            pl.col("first_admin_at").dt.strftime("%Y-%m-%d %H:%M"),
        ),
    )


def iga_deficient_standard_product(t: RuleInput, g: Guideline) -> pl.DataFrame:
    """IGA_DEFICIENT_STANDARD_PRODUCT: latest IgA result deficient, and a non-IgA-reduced product given."""
    limit = g.value("iga_deficiency_mg_dl")
    rows = t.cycles.filter((pl.col("iga_status") == DEFICIENT) & ~pl.col("is_iga_reduced_only"))
    return hits(
        rows,
        observed=pl.col("iga_mg_dl"),
        limit=limit,
        unit="mg/dL",
        message=pl.format(
            "IgA {}{} mg/dL on {} (deficient: below {} mg/dL), but the cycle used {}; "
            "a reduced-IgA product is expected",
            pl.col("iga_censor").fill_null(""),
            fmt(pl.col("iga_mg_dl")),
            pl.col("iga_collected_at").dt.strftime("%Y-%m-%d"),
            pl.lit(limit),
            pl.col("products"),
        ),
    )
