"""Load the infusion export: read, de-duplicate, parse units, check rows, quarantine.

Steps, in order (CONTRACT.md, "Bad input"):

1. exact duplicate rows (all original values equal) are counted once;
2. an ``admin_id`` on several rows with different content rejects all of them;
3. every row is parsed and checked; a failing row is rejected with all its
   problems, each naming the column, what was found and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import pandera.polars as pa
import polars as pl

from audit.frames import INFUSIONS
from audit.guideline import Guideline
from validators import parsing as p
from validators.io import INFUSION_OPTIONAL, INFUSION_REQUIRED, Loaded, read_table
from validators.quarantine import (
    ROW,
    Field,
    Problem,
    duplicate_rows,
    find_problems,
    not_after,
    parsed_if_written,
    present_if,
    quarantine,
    raw_copies,
    repeated_hashes,
    require_columns,
    with_optional,
)
from validators.schemas import INFUSIONS_SCHEMA

__all__ = ["Loaded", "load_infusions", "validate_infusions"]

#: Accepted spellings (lower case, spaces removed) -> canonical unit.
DOSE_UNITS: dict[str, str] = {"g": "g", "mg": "mg", "ml": "mL"}
WEIGHT_UNITS: dict[str, str] = {"kg": "kg", "kgs": "kg", "lb": "lb", "lbs": "lb"}
HEIGHT_UNITS: dict[str, str] = {"cm": "cm", "in": "in"}
RATE_UNITS: dict[str, str] = {"ml/h": "mL/h", "ml/hr": "mL/h", "mg/kg/min": "mg/kg/min"}
SEXES: dict[str, str] = {"f": "F", "female": "F", "m": "M", "male": "M"}
UNKNOWN_SEX: tuple[str, ...] = ("u", "unknown")

#: Exact conversion factors.
KG_PER_LB = 0.45359237
CM_PER_IN = 2.54
G_PER_MG = 0.001
MG_PER_G = 1000.0
MIN_PER_H = 60.0

#: The canonical units in the order the reasons list them.
_DOSE_UNIT_NAMES = "g, mg, mL"
_WEIGHT_UNIT_NAMES = "kg, lb"
_HEIGHT_UNIT_NAMES = "cm, in"
_RATE_UNIT_NAMES = "mL/h, mg/kg/min"


def load_infusions(
    path: Path,
    guideline: Guideline,
    *,
    mapping: Mapping[str, str] | None = None,
    now: datetime,
) -> Loaded:
    """Read and validate an infusion export into ``audit.frames.INFUSIONS``.

    ``now`` (naive local time; an aware one is converted to local time) is the
    run's clock: an administration after it is rejected as in the future.
    Raises ``InputError`` when the file can't be read or lacks a required column.
    """
    return validate_infusions(read_table(path, mapping), path, guideline, now=now)


def validate_infusions(table: pl.DataFrame, path: Path, guideline: Guideline, *, now: datetime) -> Loaded:
    """``load_infusions`` after the read: ``table`` is ``read_table(path, mapping)``'s all-text frame.

    Apart so a caller can time reading and validating separately.
    """
    now = p.local_now(now)
    require_columns(table, INFUSION_REQUIRED, path)
    staged = stage(with_optional(table, INFUSION_OPTIONAL), guideline)
    # Rows sharing an admin_id (trimmed; blank ones too) are the only candidates for
    # both exact duplicates and conflicting repeats: everything else is checked once, cheaply.
    same_id = repeated_hashes(staged.get_column("admin_id"))
    duplicate = duplicate_rows(table, candidates=same_id)
    problems = find_problems(staged, fields(guideline, now))
    conflicts = repeated_admin_ids(staged, same_id & ~duplicate)
    reasons = conflicts.join(problems, on=ROW, how="full", coalesce=True, suffix="_rows").select(
        ROW,
        pl.concat_str("reason", "reason_rows", separator="; ", ignore_nulls=True).alias("reason"),
    )
    return quarantine(
        table=table,
        staged=staged,
        reasons=reasons,
        output=INFUSIONS,
        output_schema=INFUSIONS_SCHEMA,
        duplicate=duplicate,
    )


def stage(table: pl.DataFrame, guideline: Guideline) -> pl.DataFrame:
    """Typed staging columns next to raw copies of the canonical columns."""
    products = {key: product.name for key, product in guideline.product_lookup().items()}
    concentration = {product.name: product.concentration_g_per_ml for product in guideline.products}
    columns = (*INFUSION_REQUIRED, *INFUSION_OPTIONAL)

    few = p.per_distinct(
        table,
        {
            "administered_at": p.local_datetime("administered_at"),
            "product": p.catalog_name("product", products),
            "dose": p.number("dose"),
            "dose_unit": p.code("dose_unit", DOSE_UNITS),
            "weight": p.number("weight"),
            "weight_unit": p.code("weight_unit", WEIGHT_UNITS),
            "height": p.number("height"),
            "height_unit": p.code("height_unit", HEIGHT_UNITS),
            "sex": _sex(),
            "birth_date": p.local_date("birth_date"),
            "infusion_rate": p.number("infusion_rate"),
            "infusion_rate_unit": p.code("infusion_rate_unit", RATE_UNITS),
        },
    )
    parsed = table.select(
        "source_file",
        "source_row",
        *raw_copies(columns),
        *p.trimmed(table, ("admin_id", "patient_id", "indication", "site")),
        few["administered_at"],
        few["product"],
        few["dose"],
        few["dose_unit"],
        few["weight"],
        few["weight_unit"],
        few["height"],
        _unit_of("height", pl.lit(few["height_unit"])).alias("height_unit"),
        few["sex"],
        few["birth_date"],
        few["infusion_rate"],
        _unit_of("infusion_rate", pl.lit(few["infusion_rate_unit"])).alias("infusion_rate_unit"),
    )
    g_per_ml = pl.col("product").replace_strict(concentration, default=None, return_dtype=pl.Float64)
    weight_kg = (
        pl.when(pl.col("weight_unit") == "kg")
        .then(pl.col("weight"))
        .when(pl.col("weight_unit") == "lb")
        .then(pl.col("weight") * KG_PER_LB)
        .otherwise(None)
    )
    height_cm = (
        pl.when(pl.col("height_unit") == "cm")
        .then(pl.col("height"))
        .when(pl.col("height_unit") == "in")
        .then(pl.col("height") * CM_PER_IN)
        .otherwise(None)
    )
    dose_g = (
        pl.when(pl.col("dose_unit") == "g")
        .then(pl.col("dose"))
        .when(pl.col("dose_unit") == "mg")
        .then(pl.col("dose") * G_PER_MG)
        .when(pl.col("dose_unit") == "mL")
        .then(pl.col("dose") * g_per_ml)
        .otherwise(None)
    )
    parsed = parsed.with_columns(
        weight_kg.alias("weight_kg"),
        height_cm.alias("height_cm"),
        dose_g.alias("dose_g"),
        pl.col("administered_at").dt.date().alias("administered_on"),
        g_per_ml.alias("g_per_ml"),
    )
    rate = (
        pl.when(pl.col("infusion_rate_unit") == "mg/kg/min")
        .then(pl.col("infusion_rate"))
        .when(pl.col("infusion_rate_unit") == "mL/h")
        .then(pl.col("infusion_rate") * pl.col("g_per_ml") * MG_PER_G / pl.col("weight_kg") / MIN_PER_H)
        .otherwise(None)
    )
    return parsed.with_columns(rate.alias("infusion_rate_mg_kg_min"))


def _unit_of(number: str, unit: pl.Expr) -> pl.Expr:
    """An optional number's unit; a unit without its number means nothing and is dropped."""
    return pl.when(pl.col(number).is_null()).then(None).otherwise(unit)


def _sex() -> pl.Expr:
    key = p.text("sex").str.to_lowercase()
    return pl.when(key.is_in(UNKNOWN_SEX)).then(None).otherwise(p.code("sex", SEXES))


def fields(guideline: Guideline, now: datetime) -> list[Field]:
    """The row checks, in the order reasons are listed."""
    min_kg, max_kg = guideline.value("min_weight_kg"), guideline.value("max_weight_kg")
    min_cm, max_cm = guideline.value("min_height_cm"), guideline.value("max_height_cm")
    catalog = ", ".join(product.name for product in guideline.products)
    when = now.strftime("%Y-%m-%d %H:%M")
    today = now.date()

    def outside(column: str, value: str, unit: str, converted: str, lo: float, hi: float, canonical: str) -> pl.Expr:
        in_canonical = (
            pl.when(pl.col(unit) == canonical)
            .then(pl.lit(""))
            .otherwise(
                pl.concat_str(pl.lit(" ("), pl.col(converted).round(4).cast(pl.String), pl.lit(f" {canonical})"))
            )
        )
        return p.reason(
            column,
            pl.col(p.raw(value)).str.strip_chars(),
            pl.lit(" "),
            pl.col(unit),
            in_canonical,
            f" is outside {p.limit(lo)}–{p.limit(hi)} {canonical}",
        )

    def not_one_of(column: str, names: str) -> pl.Expr:
        return p.reason(column, p.quoted(column), f" is not one of {names}")

    def not_positive(column: str) -> pl.Expr:
        return p.reason(column, p.quoted(column), " is not a positive number")

    return [
        Field("admin_id", pl.String(), missing=p.missing("admin_id")),
        Field("patient_id", pl.String(), missing=p.missing("patient_id")),
        Field(
            "administered_at",
            pl.Datetime("us"),
            missing=p.required_or("administered_at", p.not_a_datetime("administered_at")),
            problems=(
                Problem(
                    pa.Check.le(now, error="administered_at <= now"),
                    p.reason("administered_at", p.quoted("administered_at"), f" is in the future (after {when})"),
                ),
            ),
        ),
        Field(
            "product",
            pl.String(),
            missing=p.required_or(
                "product",
                p.reason("product", p.quoted("product"), f" is not in the product catalog ({catalog})"),
            ),
        ),
        Field(
            "dose",
            pl.Float64(),
            missing=p.required_or("dose", p.not_a_number("dose")),
            problems=(Problem(pa.Check.gt(0, error="dose > 0"), not_positive("dose")),),
        ),
        Field(
            "dose_unit",
            pl.String(),
            missing=p.missing("dose_unit", f"one of {_DOSE_UNIT_NAMES}"),
            problems=(
                Problem(
                    pa.Check.isin(tuple(DOSE_UNITS.values()), error="dose_unit known"),
                    not_one_of("dose_unit", _DOSE_UNIT_NAMES),
                ),
            ),
        ),
        Field(
            "weight",
            pl.Float64(),
            missing=p.required_or("weight", p.not_a_number("weight")),
        ),
        Field(
            "weight_unit",
            pl.String(),
            missing=p.missing("weight_unit", f"one of {_WEIGHT_UNIT_NAMES}"),
            problems=(
                Problem(
                    pa.Check.isin(tuple(WEIGHT_UNITS.values()), error="weight_unit known"),
                    not_one_of("weight_unit", _WEIGHT_UNIT_NAMES),
                ),
            ),
        ),
        Field(
            "weight_kg",
            pl.Float64(),
            problems=(
                Problem(
                    pa.Check.in_range(min_kg, max_kg, error="weight_kg in range"),
                    outside("weight", "weight", "weight_unit", "weight_kg", min_kg, max_kg, "kg"),
                ),
            ),
        ),
        Field(
            "height",
            pl.Float64(),
            problems=(Problem(parsed_if_written("height", "height parsed"), p.not_a_number("height")),),
        ),
        Field(
            "height_unit",
            pl.String(),
            problems=(
                Problem(
                    present_if(p.raw("height"), "height_unit given"),
                    p.lit_reason(
                        "height_unit", f"missing (required when height is given; one of {_HEIGHT_UNIT_NAMES})"
                    ),
                ),
                Problem(
                    pa.Check.isin(tuple(HEIGHT_UNITS.values()), error="height_unit known"),
                    not_one_of("height_unit", _HEIGHT_UNIT_NAMES),
                ),
            ),
        ),
        Field(
            "height_cm",
            pl.Float64(),
            problems=(
                Problem(
                    pa.Check.in_range(min_cm, max_cm, error="height_cm in range"),
                    outside("height", "height", "height_unit", "height_cm", min_cm, max_cm, "cm"),
                ),
            ),
        ),
        Field(
            "sex",
            pl.String(),
            problems=(
                Problem(
                    pa.Check.isin(tuple(SEXES.values()), error="sex known"),
                    not_one_of("sex", "F, M, female, male (blank, U or unknown = unknown)"),
                ),
            ),
        ),
        Field(
            "birth_date",
            pl.Date(),
            problems=(
                Problem(parsed_if_written("birth_date", "birth_date parsed"), p.not_a_date("birth_date")),
                Problem(
                    pa.Check.le(today, error="birth_date <= today"),
                    p.reason("birth_date", p.quoted("birth_date"), f" is in the future (after {today.isoformat()})"),
                ),
                Problem(
                    not_after("administered_on", "birth_date <= administered_at"),
                    p.reason("birth_date", p.quoted("birth_date"), " is after administered_at"),
                ),
            ),
        ),
        Field("indication", pl.String(), missing=p.missing("indication")),
        Field(
            "infusion_rate",
            pl.Float64(),
            problems=(
                Problem(parsed_if_written("infusion_rate", "infusion_rate parsed"), p.not_a_number("infusion_rate")),
                Problem(pa.Check.gt(0, error="infusion_rate > 0"), not_positive("infusion_rate")),
            ),
        ),
        Field(
            "infusion_rate_unit",
            pl.String(),
            problems=(
                Problem(
                    present_if(p.raw("infusion_rate"), "infusion_rate_unit given"),
                    p.lit_reason(
                        "infusion_rate_unit",
                        f"missing (required when infusion_rate is given; one of {_RATE_UNIT_NAMES})",
                    ),
                ),
                Problem(
                    pa.Check.isin(tuple(RATE_UNITS.values()), error="infusion_rate_unit known"),
                    not_one_of("infusion_rate_unit", _RATE_UNIT_NAMES),
                ),
            ),
        ),
    ]


#: At most this many line numbers are listed in a repeated-admin_id reason.
MAX_LINES_LISTED = 10


def repeated_admin_ids(staged: pl.DataFrame, candidates: pl.Series) -> pl.DataFrame:
    """``(_row, reason)`` for rows whose admin_id is on other rows with different content.

    ``candidates`` marks the rows that may share an admin_id, exact duplicates
    excluded (so every remaining repeat differs); only those are grouped.
    """
    rows = (
        staged.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias(ROW), "admin_id", "source_row")
        .filter(candidates)
        .filter(pl.col("admin_id").is_not_null())
    )
    groups = (
        rows.group_by("admin_id").agg(pl.col("source_row").sort().alias("lines")).filter(pl.col("lines").list.len() > 1)
    )
    listed = pl.col("lines").list.head(MAX_LINES_LISTED).cast(pl.List(pl.String)).list.join(", ")
    more = pl.col("lines").list.len().cast(pl.Int64) - MAX_LINES_LISTED
    text = pl.concat_str(
        pl.lit("admin_id: '"),
        pl.col("admin_id"),
        pl.lit("' is repeated with different content (lines "),
        listed,
        pl.when(more > 0).then(pl.format(" and {} more", more)).otherwise(pl.lit("")),
        pl.lit(")"),
    )
    return (
        rows.join(groups.select("admin_id", text.alias("reason")), on="admin_id", how="inner")
        .select(ROW, "reason")
        .sort(ROW)
    )
