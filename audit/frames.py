"""The typed tables that flow between the steps: read -> validate -> audit -> report.

These dictionaries are the contract between packages. The validators produce
``INFUSIONS``, ``LABS`` and ``REVIEWS``; the engine produces ``FINDINGS`` and
``CYCLES``; the writers only format what they are given.
"""

from __future__ import annotations

import polars as pl

# --------------------------------------------------------------------- inputs
#: One row per usable, de-duplicated administration (validators.infusions).
INFUSIONS: dict[str, pl.DataType] = {
    "source_file": pl.String(),  # file name as given by the user
    "source_row": pl.Int64(),  # line in the file (header = line 1; Parquet: row number from 1)
    "admin_id": pl.String(),
    "patient_id": pl.String(),
    "administered_at": pl.Datetime("us"),  # naive local time
    "product": pl.String(),  # canonical catalog name (Product.name)
    "dose_g": pl.Float64(),  # > 0, converted from g / mg / mL x concentration
    "weight_kg": pl.Float64(),  # actual body weight, within the profile's limits
    "height_cm": pl.Float64(),  # nullable
    "sex": pl.String(),  # "F", "M" or null (unknown)
    "birth_date": pl.Date(),  # nullable
    "indication": pl.String(),
    "site": pl.String(),  # nullable
    "infusion_rate_mg_kg_min": pl.Float64(),  # nullable; mL/h is converted when weight and product are known
}

#: One row per usable IgA result (validators.labs). Other tests are dropped and counted.
LABS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "patient_id": pl.String(),
    "collected_at": pl.Datetime("us"),  # a date without time is taken as 00:00
    "iga_mg_dl": pl.Float64(),  # the value, or the X of a censored "<X"/">X", in mg/dL
    "censor": pl.String(),  # "<", ">" or null
}

#: One row per documented reassessment (validators.reviews).
REVIEWS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "patient_id": pl.String(),
    "reviewed_on": pl.Date(),
    "note": pl.String(),  # nullable
}

#: Rejected input rows (validators): reason plus the row's original values as text.
#: The original columns follow these three, as they were in the file (after mapping).
REJECTED_KEYS: dict[str, pl.DataType] = {
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "reason": pl.String(),
}

# -------------------------------------------------------------------- outputs
#: One row per exception (audit.engine). ``admin_ids`` is a list; writers join it with ";".
FINDINGS: dict[str, pl.DataType] = {
    "rule_code": pl.String(),
    "severity": pl.String(),  # high | medium | low
    "patient_id": pl.String(),
    "course_id": pl.String(),  # "<patient_id>-C<n>"
    "cycle_number": pl.Int64(),  # from 1 within the course
    "cycle_start": pl.Date(),
    "observed": pl.Float64(),  # nullable (e.g. IGA_NOT_SCREENED)
    "limit": pl.Float64(),  # nullable; the limit the observed value was compared with
    "unit": pl.String(),  # unit of observed and limit, e.g. "g/kg", "g", "days"
    "excess_g": pl.Float64(),  # grams above the maximum dose (DOSE_ABOVE_MAX only), else null
    "message": pl.String(),  # plain-language sentence with numbers and units
    "admin_ids": pl.List(pl.String()),
}

#: One row per cycle (audit.engine); cycles.csv holds the rows whose ``in_period`` is true.
CYCLES: dict[str, pl.DataType] = {
    "patient_id": pl.String(),
    "course_id": pl.String(),
    "cycle_number": pl.Int64(),
    "cycle_start": pl.Date(),
    "cycle_end": pl.Date(),
    "first_admin_at": pl.Datetime("us"),
    "infusion_days": pl.Int64(),
    "administrations": pl.Int64(),
    "total_g": pl.Float64(),
    "actual_weight_kg": pl.Float64(),  # from the cycle's first administration
    "height_cm": pl.Float64(),
    "sex": pl.String(),
    "age_years": pl.Int64(),  # at cycle start; null without birth_date
    "ibw_kg": pl.Float64(),  # null when sex or height is missing
    "dosing_weight_kg": pl.Float64(),  # null when unknown
    "weight_basis": pl.String(),  # see audit.dosing.WEIGHT_BASES
    "g_per_kg": pl.Float64(),
    "max_daily_g": pl.Float64(),
    "max_daily_g_per_kg": pl.Float64(),
    "max_gap_days": pl.Int64(),  # largest gap between successive infusion days; null with 1 day
    "interval_days": pl.Int64(),  # start minus previous cycle's start in the course; null for cycle 1
    "products": pl.String(),  # distinct canonical product names, "; "-joined, sorted
    "is_iga_reduced_only": pl.Boolean(),
    "iga_status": pl.String(),  # "deficient" | "normal" | "not screened"
    "iga_collected_at": pl.Datetime("us"),  # the latest result at or before the first administration
    "iga_mg_dl": pl.Float64(),
    "iga_censor": pl.String(),
    "has_review_in_window": pl.Boolean(),  # only meaningful from cycle 7 on; null otherwise
    "admin_ids": pl.List(pl.String()),
    "exception_count": pl.Int64(),
    "in_period": pl.Boolean(),
}


def empty(schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty frame with the given schema."""
    return pl.DataFrame(schema=schema)
