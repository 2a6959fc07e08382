"""Dosing weight of a cycle, as polars expressions.

Ideal body weight (Devine): ``base (male or female) + kg_per_inch x (height_in - base_height_in)``.
The actual weight is used when the patient is a minor at cycle start, shorter than
``short_height_cm``, or lighter than IBW; otherwise IBW. When none of those applies and
IBW can't be computed (sex or height missing) the dosing weight is unknown.
"""

from __future__ import annotations

import polars as pl

from audit.guideline import Guideline

CM_PER_INCH = 2.54  # definition of the inch, not a guideline number

#: weight_basis values, in the order they are decided.
ACTUAL_MINOR = "actual_minor"
ACTUAL_SHORT = "actual_short"
ACTUAL_LIGHTER_THAN_IBW = "actual_lighter_than_ibw"
IBW = "ibw"
UNKNOWN = "unknown"
WEIGHT_BASES: tuple[str, ...] = (ACTUAL_MINOR, ACTUAL_SHORT, ACTUAL_LIGHTER_THAN_IBW, IBW, UNKNOWN)

#: How each basis reads in a finding's message.
WEIGHT_BASIS_LABELS: dict[str, str] = {
    ACTUAL_MINOR: "actual weight, minor",
    ACTUAL_SHORT: "actual weight, short stature",
    ACTUAL_LIGHTER_THAN_IBW: "actual weight, lighter than IBW",
    IBW: "IBW",
    UNKNOWN: "unknown",
}


def weight_basis_label(column: str = "weight_basis") -> pl.Expr:
    """The readable label of a weight_basis column."""
    return pl.col(column).replace_strict(WEIGHT_BASIS_LABELS, return_dtype=pl.String)


def ibw_kg(guideline: Guideline, *, height_cm: str = "height_cm", sex: str = "sex") -> pl.Expr:
    """Devine ideal body weight in kg; null when sex or height is missing."""
    height_in = pl.col(height_cm) / CM_PER_INCH
    base = (
        pl.when(pl.col(sex) == "M")
        .then(pl.lit(guideline.value("ibw_base_male_kg")))
        .when(pl.col(sex) == "F")
        .then(pl.lit(guideline.value("ibw_base_female_kg")))
        .otherwise(None)
    )
    return base + guideline.value("ibw_kg_per_inch") * (height_in - guideline.value("ibw_base_height_in"))


def age_years(birth: str, on: str) -> pl.Expr:
    """Completed years between the date columns ``birth`` and ``on`` (null if either is null)."""
    b, d = pl.col(birth), pl.col(on)
    before_birthday = (d.dt.month() < b.dt.month()) | ((d.dt.month() == b.dt.month()) & (d.dt.day() < b.dt.day()))
    return (d.dt.year() - b.dt.year() - before_birthday.cast(pl.Int32)).cast(pl.Int64)


def with_dosing_weight(cycles: pl.DataFrame, guideline: Guideline) -> pl.DataFrame:
    """Add ``age_years``, ``ibw_kg``, ``weight_basis`` and ``dosing_weight_kg`` to a cycle table.

    Expects ``actual_weight_kg``, ``height_cm``, ``sex``, ``birth_date`` and ``cycle_start``
    (the first administration's facts of each cycle).
    """
    out = cycles.with_columns(
        age_years=age_years("birth_date", "cycle_start"),
        ibw_kg=ibw_kg(guideline),
    )
    is_minor = (pl.col("age_years") < guideline.value("adult_age_years")).fill_null(False)
    is_short = (pl.col("height_cm") < guideline.value("short_height_cm")).fill_null(False)
    is_lighter = (pl.col("actual_weight_kg") < pl.col("ibw_kg")).fill_null(False)
    basis = (
        pl.when(is_minor)
        .then(pl.lit(ACTUAL_MINOR))
        .when(is_short)
        .then(pl.lit(ACTUAL_SHORT))
        .when(is_lighter)
        .then(pl.lit(ACTUAL_LIGHTER_THAN_IBW))
        .when(pl.col("ibw_kg").is_not_null())
        .then(pl.lit(IBW))
        .otherwise(pl.lit(UNKNOWN))
    )
    out = out.with_columns(weight_basis=basis)
    return out.with_columns(
        dosing_weight_kg=pl.when(pl.col("weight_basis") == IBW)
        .then(pl.col("ibw_kg"))
        .when(pl.col("weight_basis") == UNKNOWN)
        .then(None)
        .otherwise(pl.col("actual_weight_kg"))
    )
