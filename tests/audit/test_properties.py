"""Invariants over random administrations (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.engine import run_audit
from audit.guideline import Guideline
from tests.audit import factories as f
from validators.guideline_source import load_guideline

GUIDELINE = load_guideline("mayo-2013")
BASE = datetime(2025, 1, 1, 8, 0)

patients = st.sampled_from(["P1", "P2", "P3"])


@st.composite
def administration(draw: st.DrawFn) -> dict[str, Any]:
    return f.admin(
        draw(patients),
        BASE + timedelta(days=draw(st.integers(0, 400)), minutes=draw(st.integers(0, 600))),
        draw(st.sampled_from([5.0, 10.0, 20.0, 25.0, 30.0, 40.0, 45.0, 60.0, 90.0])),
        weight_kg=draw(st.sampled_from([40.0, 55.0, 70.0, 95.0, 130.0])),
        height_cm=draw(st.sampled_from([None, 148.0, 152.4, 165.0, 185.0])),
        sex=draw(st.sampled_from([None, "F", "M"])),
        birth_date=draw(st.sampled_from([None, datetime(2010, 5, 1).date(), datetime(1960, 3, 1).date()])),
        product=draw(st.sampled_from(["Privigen", "Gammagard S/D"])),
        indication=draw(st.sampled_from(["M33.1", "M33.1", "G61.81"])),
    )


@st.composite
def dataset(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    rows = draw(st.lists(administration(), min_size=1, max_size=40))
    labs = f.labs(
        [
            (
                draw(patients),
                (BASE + timedelta(days=draw(st.integers(-30, 400)))).isoformat(),
                draw(st.sampled_from([2.0, 6.99, 7.0, 150.0])),
                draw(st.sampled_from([None, None, "<", ">"])),
            )
            for _ in range(draw(st.integers(0, 6)))
        ]
    )
    reviews = f.reviews(
        [
            (draw(patients), (BASE + timedelta(days=draw(st.integers(0, 400)))).date().isoformat())
            for _ in range(draw(st.integers(0, 3)))
        ]
    )
    return f.infusions(rows), labs, reviews


def _keys(df: pl.DataFrame) -> pl.DataFrame:
    return df.with_columns(pl.col("admin_ids").list.sort()).sort(pl.all().exclude("admin_ids"))


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(data=dataset(), seed=st.integers(0, 2**32 - 1))
def test_row_order_changes_nothing(data: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame], seed: int) -> None:
    """Shuffling every input table gives the same findings and cycles."""
    infusions, labs, reviews = data
    a = run_audit(infusions, labs, reviews, GUIDELINE)
    b = run_audit(
        infusions.sample(fraction=1.0, shuffle=True, seed=seed),
        labs.sample(fraction=1.0, shuffle=True, seed=seed),
        reviews.sample(fraction=1.0, shuffle=True, seed=seed),
        GUIDELINE,
    )
    assert _keys(a.findings).equals(_keys(b.findings))
    assert _keys(a.cycles).equals(_keys(b.cycles))


@SETTINGS
@given(data=dataset())
def test_no_row_is_lost(data: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> None:
    """Every administration is audited or out of scope, and every audited one sits in one cycle."""
    infusions, labs, reviews = data
    result = run_audit(infusions, labs, reviews, GUIDELINE)
    assert result.counts["rows_audited"] + result.counts["rows_out_of_scope"] == infusions.height
    assert result.cycles["administrations"].sum() == result.counts["rows_audited"]
    in_cycles = result.cycles["admin_ids"].explode().sort().to_list()
    expected = sorted(
        infusions.join(result.out_of_scope.select("admin_id"), on="admin_id", how="anti")["admin_id"].to_list()
    )
    assert in_cycles == expected


#: (parameter, factor) pairs that loosen a limit: a looser guideline never adds findings.
LOOSENINGS = [
    ("max_g_per_kg", 1.25),
    ("min_g_per_kg", 0.75),
    ("max_daily_g_per_kg", 1.3),
    ("dose_tolerance_fraction", 3.0),
    ("large_dose_g", 1.5),
    ("large_dose_min_days", 0.5),
    ("max_gap_within_cycle_days", 3.0),
    ("max_infusion_days", 2.0),
    ("iga_deficiency_mg_dl", 0.5),
    ("min_interval_days", 0.5),
    ("max_interval_days", 2.0),
]


def _found(g: Guideline, data: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> set[tuple[str, str, int]]:
    result = run_audit(*data, g)
    return set(result.findings.select("rule_code", "course_id", "cycle_number").iter_rows())


@SETTINGS
@given(data=dataset(), loosening=st.sampled_from(LOOSENINGS))
def test_loosening_a_limit_never_adds_findings(
    data: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame], loosening: tuple[str, float]
) -> None:
    """Moving any limit in its permissive direction yields a subset of the findings."""
    name, factor = loosening
    looser = GUIDELINE.with_value(name, GUIDELINE.value(name) * factor)
    assert _found(looser, data) <= _found(GUIDELINE, data)


@SETTINGS
@given(data=dataset(), extra=st.integers(1, 3))
def test_allowing_more_cycles_never_adds_review_findings(
    data: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame], extra: int
) -> None:
    """Allowing more cycles before a review never adds a review finding to any course."""
    looser = GUIDELINE.with_value("max_cycles_without_review", GUIDELINE.value("max_cycles_without_review") + extra)

    def courses(g: Guideline) -> set[str]:
        return {c for rule, c, _ in _found(g, data) if rule == "COURSE_BEYOND_6_CYCLES_NO_REVIEW"}

    assert courses(looser) <= courses(GUIDELINE)
