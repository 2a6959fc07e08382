"""Small builders for typed audit inputs (the shapes in audit.frames)."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

import polars as pl

from audit import frames

_ids = itertools.count(1)


def admin(
    patient_id: str = "P1",
    at: str | datetime = "2025-01-06 09:00",
    dose_g: float = 50.0,
    *,
    weight_kg: float = 70.0,
    height_cm: float | None = 170.0,
    sex: str | None = "F",
    birth_date: date | None = date(1970, 1, 1),
    product: str = "Privigen",
    indication: str = "M33.1",
    admin_id: str | None = None,
) -> dict[str, Any]:
    """One administration row."""
    when = at if isinstance(at, datetime) else datetime.fromisoformat(at)
    return {
        "source_file": "infusions.csv",
        "source_row": 0,
        "admin_id": admin_id or f"A{next(_ids):07d}",
        "patient_id": patient_id,
        "administered_at": when,
        "product": product,
        "dose_g": dose_g,
        "weight_kg": weight_kg,
        "height_cm": height_cm,
        "sex": sex,
        "birth_date": birth_date,
        "indication": indication,
        "site": None,
        "infusion_rate_mg_kg_min": None,
    }


def cycle(
    patient_id: str,
    start: str,
    daily_g: list[float],
    *,
    day_step: int = 1,
    **kw: Any,
) -> list[dict[str, Any]]:
    """Consecutive (or ``day_step``-spaced) infusion days starting at ``start`` 09:00."""
    first = datetime.fromisoformat(start).replace(hour=9)
    return [admin(patient_id, first + timedelta(days=i * day_step), g, **kw) for i, g in enumerate(daily_g)]


def infusions(rows: list[dict[str, Any]]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema=frames.INFUSIONS) if rows else frames.empty(frames.INFUSIONS)
    return df.with_columns(source_row=pl.int_range(2, pl.len() + 2, dtype=pl.Int64))


def labs(rows: list[tuple[str, str, float, str | None]]) -> pl.DataFrame:
    """(patient_id, collected_at ISO, iga_mg_dl, censor) tuples."""
    data = [
        {
            "source_file": "labs.csv",
            "source_row": i + 2,
            "patient_id": p,
            "collected_at": datetime.fromisoformat(at),
            "iga_mg_dl": v,
            "censor": c,
        }
        for i, (p, at, v, c) in enumerate(rows)
    ]
    return pl.DataFrame(data, schema=frames.LABS) if data else frames.empty(frames.LABS)


def screened(*patients: str, at: str = "2020-01-01") -> pl.DataFrame:
    """A normal IgA result long before everything, for each patient."""
    return labs([(p, at, 150.0, None) for p in patients])


def reviews(rows: list[tuple[str, str]]) -> pl.DataFrame:
    data = [
        {
            "source_file": "reviews.csv",
            "source_row": i + 2,
            "patient_id": p,
            "reviewed_on": date.fromisoformat(d),
            "note": None,
        }
        for i, (p, d) in enumerate(rows)
    ]
    return pl.DataFrame(data, schema=frames.REVIEWS) if data else frames.empty(frames.REVIEWS)
