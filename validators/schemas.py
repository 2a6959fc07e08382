"""Pandera schemas for the typed frames of ``audit.frames``.

Each schema takes its columns and dtypes from the frame dictionary it guards,
so the two can't drift apart; this module adds nullability and value checks.
The validators check their own output against the input schemas; the engine's
output (findings, cycles) can be checked with ``FINDINGS_SCHEMA`` and
``CYCLES_SCHEMA``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandera.polars as pa
import polars as pl

from audit.frames import CYCLES, FINDINGS, INFUSIONS, LABS, REVIEWS
from audit.guideline import RULE_CODES, SEVERITY_ORDER

CENSOR_SIGNS: tuple[str, ...] = ("<", ">")
SEXES: tuple[str, ...] = ("F", "M")
IGA_STATUSES: tuple[str, ...] = ("deficient", "normal", "not screened")


def frame_schema(
    name: str,
    frame: Mapping[str, pl.DataType],
    *,
    nullable: Sequence[str] = (),
    checks: Mapping[str, Sequence[pa.Check]] | None = None,
    unique: Sequence[str] = (),
) -> pa.DataFrameSchema:
    """A strict, ordered schema with exactly the columns and dtypes of ``frame``."""
    checks = checks or {}
    unknown = (set(nullable) | set(checks) | set(unique)) - set(frame)
    if unknown:
        raise ValueError(f"{name}: not columns of the frame: {', '.join(sorted(unknown))}")
    return pa.DataFrameSchema(
        {
            column: pa.Column(
                dtype,
                nullable=column in nullable,
                checks=list(checks.get(column, ())),
                unique=column in unique,
            )
            for column, dtype in frame.items()
        },
        strict=True,
        ordered=True,
        name=name,
    )


_ROW_KEY_CHECKS: dict[str, list[pa.Check]] = {"source_row": [pa.Check.ge(1)]}

INFUSIONS_SCHEMA = frame_schema(
    "INFUSIONS",
    INFUSIONS,
    nullable=("height_cm", "sex", "birth_date", "site", "infusion_rate_mg_kg_min"),
    checks={
        **_ROW_KEY_CHECKS,
        "dose_g": [pa.Check.gt(0)],
        "weight_kg": [pa.Check.gt(0)],
        "height_cm": [pa.Check.gt(0)],
        "sex": [pa.Check.isin(SEXES)],
        "infusion_rate_mg_kg_min": [pa.Check.gt(0)],
    },
    unique=("admin_id",),
)

LABS_SCHEMA = frame_schema(
    "LABS",
    LABS,
    nullable=("censor",),
    checks={
        **_ROW_KEY_CHECKS,
        "iga_mg_dl": [pa.Check.ge(0)],
        "censor": [pa.Check.isin(CENSOR_SIGNS)],
    },
)

REVIEWS_SCHEMA = frame_schema(
    "REVIEWS",
    REVIEWS,
    nullable=("note",),
    checks=_ROW_KEY_CHECKS,
)

FINDINGS_SCHEMA = frame_schema(
    "FINDINGS",
    FINDINGS,
    nullable=("observed", "limit", "unit", "excess_g"),
    checks={
        "rule_code": [pa.Check.isin(RULE_CODES)],
        "severity": [pa.Check.isin(tuple(SEVERITY_ORDER))],
        "cycle_number": [pa.Check.ge(1)],
        "excess_g": [pa.Check.ge(0)],
    },
)

CYCLES_SCHEMA = frame_schema(
    "CYCLES",
    CYCLES,
    nullable=(
        "height_cm",
        "sex",
        "age_years",
        "ibw_kg",
        "dosing_weight_kg",
        "weight_basis",
        "g_per_kg",
        "max_daily_g_per_kg",
        "max_gap_days",
        "interval_days",
        "iga_collected_at",
        "iga_mg_dl",
        "iga_censor",
        "has_review_in_window",
    ),
    checks={
        "cycle_number": [pa.Check.ge(1)],
        "infusion_days": [pa.Check.ge(1)],
        "administrations": [pa.Check.ge(1)],
        "total_g": [pa.Check.gt(0)],
        "actual_weight_kg": [pa.Check.gt(0)],
        "height_cm": [pa.Check.gt(0)],
        "sex": [pa.Check.isin(SEXES)],
        "age_years": [pa.Check.ge(0)],
        "ibw_kg": [pa.Check.gt(0)],
        "dosing_weight_kg": [pa.Check.gt(0)],
        "g_per_kg": [pa.Check.ge(0)],
        "max_daily_g": [pa.Check.gt(0)],
        "max_daily_g_per_kg": [pa.Check.ge(0)],
        "max_gap_days": [pa.Check.ge(1)],
        "interval_days": [pa.Check.ge(0)],
        "iga_status": [pa.Check.isin(IGA_STATUSES)],
        "iga_mg_dl": [pa.Check.ge(0)],
        "iga_censor": [pa.Check.isin(CENSOR_SIGNS)],
        "exception_count": [pa.Check.ge(0)],
    },
)
