"""Shared fixtures for the validator tests: a fixed clock, the default profile, file writers."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from audit.guideline import Guideline
from validators.guideline_source import load_guideline

#: The run's clock in every test.
NOW = datetime(2025, 6, 1, 12, 0)

INFUSION_COLUMNS: tuple[str, ...] = (
    "admin_id",
    "patient_id",
    "administered_at",
    "product",
    "dose",
    "dose_unit",
    "weight",
    "weight_unit",
    "height",
    "height_unit",
    "sex",
    "birth_date",
    "indication",
    "site",
    "infusion_rate",
    "infusion_rate_unit",
)

#: A valid infusion row; tests change one thing at a time.
GOOD_INFUSION: dict[str, str] = {
    "admin_id": "A1",
    "patient_id": "P1",
    "administered_at": "2025-03-04 09:30",
    "product": "Privigen",
    "dose": "35",
    "dose_unit": "g",
    "weight": "70",
    "weight_unit": "kg",
    "height": "170",
    "height_unit": "cm",
    "sex": "F",
    "birth_date": "1980-01-02",
    "indication": "M33.1",
    "site": "North",
    "infusion_rate": "",
    "infusion_rate_unit": "",
}

LAB_COLUMNS: tuple[str, ...] = ("patient_id", "collected_at", "test", "value", "unit")
GOOD_LAB: dict[str, str] = {
    "patient_id": "P1",
    "collected_at": "2025-03-01 08:00",
    "test": "IgA",
    "value": "120",
    "unit": "mg/dL",
}

REVIEW_COLUMNS: tuple[str, ...] = ("patient_id", "reviewed_on", "note")
GOOD_REVIEW: dict[str, str] = {"patient_id": "P1", "reviewed_on": "2025-04-01", "note": "continue"}


@pytest.fixture(scope="session")
def guideline() -> Guideline:
    return load_guideline("mayo-2013")


def infusion(**changes: str) -> dict[str, str]:
    """The good infusion row with some values changed."""
    return {**GOOD_INFUSION, **changes}


def lab(**changes: str) -> dict[str, str]:
    """The good IgA row with some values changed."""
    return {**GOOD_LAB, **changes}


def review(**changes: str) -> dict[str, str]:
    """The good review row with some values changed."""
    return {**GOOD_REVIEW, **changes}


def write_csv(
    path: Path,
    rows: Iterable[Mapping[str, str]],
    columns: Sequence[str] | None = None,
) -> Path:
    """Write rows as a CSV with a header line (columns default to the first row's keys)."""
    rows = list(rows)
    header = list(columns if columns is not None else rows[0].keys())
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row.get(c, "") for c in header])
    return path
