"""Shared fixtures for the pure audit tests (no Prefect, no files)."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl
import pytest

from audit.engine import AuditResult, run_audit
from audit.guideline import Guideline
from tests.audit import factories as f
from validators.guideline_source import load_guideline


@pytest.fixture(scope="session")
def guideline() -> Guideline:
    return load_guideline("mayo-2013")


def audit_rows(
    guideline: Guideline,
    rows: list[dict[str, Any]],
    *,
    labs: pl.DataFrame | None = None,
    reviews: pl.DataFrame | None = None,
    period_start: date | None = None,
    period_end: date | None = None,
) -> AuditResult:
    """Audit hand-built rows; every patient is IgA-screened unless ``labs`` is given."""
    patients = sorted({r["patient_id"] for r in rows})
    return run_audit(
        f.infusions(rows),
        labs if labs is not None else f.screened(*patients),
        reviews if reviews is not None else f.reviews([]),
        guideline,
        period_start=period_start,
        period_end=period_end,
    )


def codes(result: AuditResult, rule: str | None = None) -> list[tuple[str, int, str]]:
    """(course_id, cycle_number, rule_code) of each finding, optionally of one rule."""
    df = result.findings
    if rule:
        df = df.filter(pl.col("rule_code") == rule)
    return sorted(zip(df["course_id"], df["cycle_number"], df["rule_code"], strict=True))
