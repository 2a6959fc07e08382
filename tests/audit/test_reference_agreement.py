"""The engine agrees with the plain-Python reference (bench.reference) written from GUIDELINE.md alone."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from audit import frames
from audit.engine import run_audit
from bench.reference import reference_audit
from tests.audit import factories as f
from validators.guideline_source import load_guideline

GUIDELINE = load_guideline("mayo-2013")
BASE = datetime(2025, 1, 1)
PATIENTS = ("P1", "P2", "P3", "P4")

Key = tuple[str, str, str, int, date]  # patient_id, rule_code, course_id, cycle_number, cycle_start

# ----------------------------------------------------------------- strategies
IN_SCOPE = ("M33.1", "M33.10", "M331", "M33.0", "M33.90", "M339", "Dermatomyositis", "juvenile DERMATOMYOSITIS")
OUT_OF_SCOPE = ("M33.2", "M33", "M60.9", "G61.81", "Polymyositis", "ITP")
indications = st.one_of(st.sampled_from(IN_SCOPE), st.sampled_from(IN_SCOPE), st.sampled_from(OUT_OF_SCOPE))
products = st.sampled_from(["Privigen", "Privigen", "Gammagard S/D", "Gammagard S/D", "Octagam 10%", "Gamunex-C"])
weights = st.one_of(
    st.sampled_from([30.0, 40.0, 45.5, 50.0, 60.0, 70.0, 100.0, 120.0, 160.0]),
    st.floats(30.0, 160.0, allow_nan=False),
)
heights = st.one_of(
    st.sampled_from([None, None, 140.0, 150.0, 152.3, 152.4, 152.4, 152.5, 165.0, 170.0, 185.0, 200.0]),
    st.floats(140.0, 200.0, allow_nan=False),
)
sexes = st.sampled_from([None, "F", "F", "M", "M"])
births = st.one_of(
    st.sampled_from(
        [None, date(1960, 3, 1), date(1985, 7, 15), date(2007, 3, 15), date(2008, 2, 29), date(2012, 6, 1)]
    ),
    st.dates(date(2005, 1, 1), date(2010, 12, 31)),  # turns 18 in or near the data
)
doses = st.one_of(
    st.integers(5, 120).map(float),
    st.sampled_from([35.0, 47.5, 52.5, 57.0, 63.0, 105.0]),  # exact g/kg limits for 50 / 60 / 100 kg
    st.floats(5.0, 120.0, allow_nan=False),
)
# days between successive administrations: same day, within a cycle, the cycle/course boundaries, anything
within_cycle = st.sampled_from([0, 0, 1, 1, 1, 2, 3, 4])
between_cycles = st.sampled_from([4, 17, 20, 21, 22, 27, 28, 31, 35, 36, 45, 60, 86, 89, 90, 91, 95, 100])
gaps = st.one_of(within_cycle, between_cycles, st.integers(0, 100))
dense_gaps = st.sampled_from([0, 1, 1, 1, 1, 2, 3, 28])  # long cycles (> 5 infusion days)
minutes_of_day = st.sampled_from([0, 0, 8 * 60, 9 * 60, 9 * 60, 13 * 60 + 30, 23 * 60 + 59])


@st.composite
def patient_rows(draw: st.DrawFn, patient_id: str) -> list[dict[str, Any]]:
    """A patient's administrations: shared attributes, each sometimes overridden per row."""
    base = {
        "weight_kg": draw(weights),
        "height_cm": draw(heights),
        "sex": draw(sexes),
        "birth_date": draw(births),
        "product": draw(products),
        "indication": draw(indications),
    }
    attribute = {
        "weight_kg": weights,
        "height_cm": heights,
        "sex": sexes,
        "birth_date": births,
        "product": products,
        "indication": indications,
    }
    day = BASE + timedelta(days=draw(st.integers(0, 60)))
    at = day
    gap_days = draw(st.sampled_from([gaps, gaps, dense_gaps]))
    rows = []
    for i in range(draw(st.integers(1, 24))):
        if i:
            gap = draw(gap_days)
            day += timedelta(days=gap)
        if i == 0 or not (gap == 0 and draw(st.booleans())):  # else: the very same instant (admin_id breaks the tie)
            at = day + timedelta(minutes=draw(minutes_of_day))
        row = dict(base)
        for name in draw(st.sets(st.sampled_from(sorted(attribute)), max_size=2)):
            row[name] = draw(attribute[name])
        rows.append(f.admin(patient_id, at, draw(doses), admin_id="-", **row))
    return rows


def _lab_row(patient_id: str, at: datetime, value: float, censor: str | None) -> dict[str, Any]:
    return {
        "source_file": "labs.csv",
        "source_row": 0,
        "patient_id": patient_id,
        "collected_at": at,
        "iga_mg_dl": value,
        "censor": censor,
    }


@st.composite
def patient_labs(draw: st.DrawFn, patient_id: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """IgA results at, just before/after, or the midnight of administrations; ties; censored values."""
    instants = [r["administered_at"] for r in rows] or [BASE]
    labs: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 4))):
        ref = draw(st.sampled_from(instants))
        kind = draw(st.sampled_from(["same", "midnight", "offset", "early", "tie"]))
        if kind == "same":
            at = ref
        elif kind == "midnight":
            at = datetime.combine(ref.date(), datetime.min.time())
        elif kind == "offset":
            at = ref + timedelta(hours=draw(st.integers(-72, 72)), minutes=draw(st.sampled_from([0, 1, -1])))
        elif kind == "early":
            at = BASE - timedelta(days=30)
        else:
            at = draw(st.sampled_from([lab["collected_at"] for lab in labs])) if labs else ref
        value = draw(st.sampled_from([2.0, 6.99, 7.0, 7.01, 150.0]))
        censor = draw(st.sampled_from([None, None, "<", ">"]))
        labs.append(_lab_row(patient_id, at, value, censor))
    return labs


@st.composite
def dataset(draw: st.DrawFn) -> dict[str, Any]:
    patients = draw(st.lists(st.sampled_from(PATIENTS), min_size=1, max_size=4, unique=True))
    rows: list[dict[str, Any]] = []
    labs: list[dict[str, Any]] = []
    reviews: list[dict[str, Any]] = []
    for p in patients:
        p_rows = draw(patient_rows(p))
        rows += p_rows
        labs += draw(patient_labs(p, p_rows))
        days = sorted({r["administered_at"].date() for r in p_rows})
        for _ in range(draw(st.integers(0, 3))):
            on = draw(st.sampled_from(days)) + timedelta(days=draw(st.sampled_from([-1, 0, 0, 1, 10])))
            reviews.append(
                {"source_file": "reviews.csv", "source_row": 0, "patient_id": p, "reviewed_on": on, "note": None}
            )
    # unique admin ids whose text order is unrelated to time order ("A10" < "A9")
    ids = draw(st.permutations(range(len(rows))))
    for row, n in zip(rows, ids, strict=True):
        row["admin_id"] = f"A{n}"
    all_days = sorted({r["administered_at"].date() for r in rows})
    bound = st.one_of(st.none(), st.sampled_from(all_days).flatmap(lambda d: st.sampled_from([d, d - timedelta(1)])))
    period_start, period_end = draw(bound), draw(bound)
    if draw(st.booleans()):
        period_start = period_end = None
    return {"rows": rows, "labs": labs, "reviews": reviews, "period_start": period_start, "period_end": period_end}


# ------------------------------------------------------------------ comparing
def _frames(
    rows: list[dict[str, Any]], labs: list[dict[str, Any]], reviews: list[dict[str, Any]]
) -> tuple[pl.DataFrame, ...]:
    return (
        f.infusions(rows),
        pl.DataFrame(labs, schema=frames.LABS) if labs else frames.empty(frames.LABS),
        pl.DataFrame(reviews, schema=frames.REVIEWS) if reviews else frames.empty(frames.REVIEWS),
    )


def _key(r: dict[str, Any]) -> Key:
    return (r["patient_id"], r["rule_code"], r["course_id"], r["cycle_number"], r["cycle_start"])


def both(
    rows: list[dict[str, Any]],
    labs: list[dict[str, Any]] | pl.DataFrame,
    reviews: list[dict[str, Any]] | pl.DataFrame,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
) -> tuple[dict[Key, dict[str, Any]], dict[Key, dict[str, Any]]]:
    """(engine findings, reference findings), each keyed by (patient, rule, course, cycle number, cycle start)."""
    lab_rows = labs.to_dicts() if isinstance(labs, pl.DataFrame) else labs
    review_rows = reviews.to_dicts() if isinstance(reviews, pl.DataFrame) else reviews
    inf, lab_df, rev_df = _frames(rows, lab_rows, review_rows)
    engine = run_audit(inf, lab_df, rev_df, GUIDELINE, period_start=period_start, period_end=period_end)
    ref = reference_audit(
        inf.to_dicts(),
        lab_df.to_dicts(),
        rev_df.to_dicts(),
        GUIDELINE,
        period_start=period_start,
        period_end=period_end,
    )
    engine_by_key = {_key(r): r for r in engine.findings.to_dicts()}
    ref_by_key = {_key(r): r for r in ref}
    assert len(engine_by_key) == engine.findings.height, "the engine reports a (rule, cycle) twice"
    assert len(ref_by_key) == len(ref)
    return engine_by_key, ref_by_key


def assert_agree(engine: dict[Key, dict[str, Any]], ref: dict[Key, dict[str, Any]]) -> None:
    only_engine = sorted(set(engine) - set(ref))
    only_ref = sorted(set(ref) - set(engine))
    assert not only_engine, f"engine only: {only_engine}; reference only: {only_ref}"
    assert not only_ref, f"reference only: {only_ref}"
    for k, e in engine.items():
        r = ref[k]
        assert e["severity"] == r["severity"], k
        for column in ("observed", "limit"):
            assert (e[column] is None) == (r[column] is None), (k, column, e[column], r[column])
            if e[column] is not None and r[column] is not None:
                assert abs(e[column] - r[column]) <= 1e-9, (k, column, e[column], r[column])


def screened(*patients: str) -> list[dict[str, Any]]:
    return [_lab_row(p, datetime(2020, 1, 1), 150.0, None) for p in patients]


def codes(found: dict[Key, dict[str, Any]], rule: str | None = None) -> list[tuple[str, int, str]]:
    return sorted((k[2], k[3], k[1]) for k in found if rule is None or k[1] == rule)


# ------------------------------------------------------------ the differential
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=dataset())
def test_engine_agrees_with_reference(data: dict[str, Any]) -> None:
    """On random inputs the engine and the reference report the same exceptions with the same observed values."""
    engine, ref = both(
        data["rows"], data["labs"], data["reviews"], period_start=data["period_start"], period_end=data["period_end"]
    )
    assert_agree(engine, ref)
    for rule in sorted({k[1] for k in ref}):
        event(rule)  # coverage: `pytest --hypothesis-show-statistics` lists how often each rule fired
    if data["period_start"] or data["period_end"]:
        event("with period bounds")


# ------------------------------------------------------ GUIDELINE.md, by hand
SHORT = {"height_cm": 150.0, "weight_kg": 50.0, "sex": "F"}  # dosed on actual weight: g/kg = dose / 50


def test_friday_monday_split_is_one_cycle() -> None:
    """Friday + Monday (3 days) is one cycle with non-consecutive days; Friday + Tuesday (4 days) is two cycles."""
    rows = [f.admin("P1", "2025-01-03 09:00", 25.0, **SHORT), f.admin("P1", "2025-01-06 09:00", 25.0, **SHORT)]
    rows += [f.admin("P1", "2025-02-07 09:00", 50.0, **SHORT), f.admin("P1", "2025-02-11 09:00", 50.0, **SHORT)]
    engine, ref = both(rows, screened("P1"), [])
    # 3 January -> 7 February is 35 days (not > 35); 7 -> 11 February is 4 days apart: a new, too-early cycle
    expected = [("P1-C1", 1, "DAYS_NOT_CONSECUTIVE"), ("P1-C1", 3, "CYCLE_INTERVAL_SHORT")]
    assert codes(ref) == codes(engine) == expected
    assert ref[("P1", "DAYS_NOT_CONSECUTIVE", "P1-C1", 1, date(2025, 1, 3))]["observed"] == 3.0
    assert ref[("P1", "CYCLE_INTERVAL_SHORT", "P1-C1", 3, date(2025, 2, 11))]["observed"] == 4.0
    assert_agree(engine, ref)


@pytest.mark.parametrize(("gap_days", "same_course"), [(90, True), (91, False)])
def test_course_boundary_at_90_days(gap_days: int, same_course: bool) -> None:
    """A cycle starting exactly 90 days after the previous start stays in the course; 91 days starts course 2."""
    second = (date(2025, 1, 6) + timedelta(days=gap_days)).isoformat()
    rows = f.cycle("P1", "2025-01-06", [25.0, 25.0], **SHORT) + f.cycle("P1", second, [25.0, 25.0], **SHORT)
    labs = [_lab_row("P1", datetime(2025, 1, 6), 150.0, None)]  # screened for course 1 only
    engine, ref = both(rows, labs, [])
    if same_course:
        expected = [("P1-C1", 2, "CYCLE_INTERVAL_LONG")]
        assert ref[("P1", "CYCLE_INTERVAL_LONG", "P1-C1", 2, date.fromisoformat(second))]["observed"] == 90.0
    else:
        expected = []  # course 2's first administration is after the 2025-01-06 result: screened, no interval
    assert codes(ref) == codes(engine) == expected
    assert_agree(engine, ref)


def _seven_cycles(patient_id: str = "P1") -> tuple[list[dict[str, Any]], list[date]]:
    starts = [date(2025, 1, 6) + timedelta(days=28 * i) for i in range(8)]
    rows = [r for s in starts for r in f.cycle(patient_id, s.isoformat(), [25.0, 25.0], **SHORT)]
    return rows, starts


@pytest.mark.parametrize(
    ("review_offset", "fires"),
    [(("c3", 0), False), (("c3", -1), True), (("c7", 0), False), (("c7", 1), True), (("c5", 0), False), (None, True)],
    ids=["on-cycle-3-start", "day-before-cycle-3", "on-cycle-7-start", "day-after-cycle-7", "mid-window", "none"],
)
def test_cycle_7_review_window_is_inclusive(review_offset: tuple[str, int] | None, fires: bool) -> None:
    """COURSE_BEYOND_6_CYCLES_NO_REVIEW fires on cycle 7 only, unless reviewed from cycle 3's start to cycle 7's."""
    rows, starts = _seven_cycles()
    reviews = []
    if review_offset is not None:
        anchor = {"c3": starts[2], "c5": starts[4], "c7": starts[6]}[review_offset[0]]
        on = anchor + timedelta(days=review_offset[1])
        reviews = [{"source_file": "r.csv", "source_row": 2, "patient_id": "P1", "reviewed_on": on, "note": None}]
    engine, ref = both(rows, screened("P1"), reviews)
    expected = [("P1-C1", 7, "COURSE_BEYOND_6_CYCLES_NO_REVIEW")] if fires else []
    assert codes(ref) == codes(engine) == expected  # cycle 8 never fires
    assert_agree(engine, ref)


@pytest.mark.parametrize(
    ("collected_at", "screened_before"),
    [
        ("2025-01-06 00:00", True),  # a date without time: 00:00 that day
        ("2025-01-06 09:00", True),  # the very instant of the first administration
        ("2025-01-06 09:01", False),
        ("2025-01-07 00:00", False),  # on day 2 of the cycle: too late for cycle 1
    ],
)
def test_iga_collected_on_the_day_of_the_first_administration(collected_at: str, screened_before: bool) -> None:
    """A result dated the day of the first administration (no time) counts as taken before it; later ones don't."""
    rows = f.cycle("P1", "2025-01-06", [25.0, 25.0], **SHORT)  # 09:00 on 6 and 7 January
    for censor, value in ((None, 150.0), ("<", 40.0)):
        labs = [_lab_row("P1", datetime.fromisoformat(collected_at), value, censor)]
        engine, ref = both(rows, labs, [])
        if not screened_before:
            expected = [("P1-C1", 1, "IGA_NOT_SCREENED")]
        elif censor == "<":  # "<40" is deficient whatever 40 is, and Privigen is not IgA-reduced
            expected = [("P1-C1", 1, "IGA_DEFICIENT_STANDARD_PRODUCT")]
        else:
            expected = []
        assert codes(ref) == codes(engine) == expected
        assert_agree(engine, ref)


@pytest.mark.parametrize(
    ("daily_g", "expected"),
    [
        ([52.5, 52.5], []),  # exactly 2.1 g/kg, each day exactly 1.05 g/kg: no exception
        ([52.5, 53.0], ["DAILY_DOSE_ABOVE_MAX", "DOSE_ABOVE_MAX"]),
        ([35.0, 35.0, 35.0], []),  # 2.1 g/kg over 3 days
        ([23.75, 23.75], []),  # exactly 0.95 g/kg
        ([23.7, 23.75], ["DOSE_BELOW_MIN"]),
    ],
)
def test_dose_exactly_at_the_tolerance_limits(daily_g: list[float], expected: list[str]) -> None:
    """Doses exactly at 2.0 × 1.05, 1.0 × 1.05 and 1.0 × 0.95 g/kg do not fire ('>' and '<' are strict)."""
    rows = f.cycle("P1", "2025-01-06", daily_g, **SHORT)
    engine, ref = both(rows, screened("P1"), [])
    large = ["LARGE_DOSE_NOT_SPREAD"] if sum(daily_g) > 80 and len(daily_g) < 3 else []
    assert codes(ref) == codes(engine) == [("P1-C1", 1, c) for c in sorted(expected + large)]
    assert_agree(engine, ref)


def test_minor_at_cycle_start_uses_actual_weight() -> None:
    """Age is taken at the cycle start: the day before the 18th birthday is actual weight, the birthday is IBW."""
    kw = {"weight_kg": 100.0, "height_cm": 180.0, "sex": "F", "birth_date": date(2007, 3, 15)}
    rows = f.cycle("P1", "2025-03-14", [100.0, 100.0], **kw) + f.cycle("P1", "2025-04-15", [100.0, 100.0], **kw)
    engine, ref = both(rows, screened("P1"), [])
    # minor: 200 g / 100 kg = 2.0 g/kg; adult: 200 g / IBW 70.5 kg = 2.84 g/kg
    assert codes(ref, "DOSE_ABOVE_MAX") == codes(engine, "DOSE_ABOVE_MAX") == [("P1-C1", 2, "DOSE_ABOVE_MAX")]
    assert_agree(engine, ref)


def test_first_administration_tie_is_broken_by_admin_id() -> None:
    """Two rows at the same first instant: the dosing weight comes from the smaller admin_id."""
    rows = [
        f.admin("P1", "2025-01-06 09:00", 50.0, admin_id="A2", weight_kg=100.0, height_cm=150.0, sex="F"),
        f.admin("P1", "2025-01-06 09:00", 55.0, admin_id="A10", weight_kg=50.0, height_cm=150.0, sex="F"),
    ]
    engine, ref = both(rows, screened("P1"), [])
    # "A10" < "A2": 105 g / 50 kg = 2.1 g/kg, no DOSE_ABOVE_MAX but 2.1 g/kg in one day
    assert codes(ref) == codes(engine) == [("P1-C1", 1, "DAILY_DOSE_ABOVE_MAX"), ("P1-C1", 1, "LARGE_DOSE_NOT_SPREAD")]
    assert_agree(engine, ref)


def test_audit_period_keeps_history_as_context() -> None:
    """Only cycles starting in the period are reported; numbering and IgA still use earlier history."""
    rows, starts = _seven_cycles()
    engine, ref = both(rows, screened("P1"), [], period_start=starts[6], period_end=starts[6])
    assert codes(ref) == codes(engine) == [("P1-C1", 7, "COURSE_BEYOND_6_CYCLES_NO_REVIEW")]
    assert_agree(engine, ref)
