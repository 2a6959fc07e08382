"""Every rule of profile mayo-2013 at, just below and just above its limits."""

from __future__ import annotations

import pytest

from audit.guideline import Guideline
from tests.audit import factories as f
from tests.audit.conftest import audit_rows, codes

# A patient dosed on actual weight (shorter than 152.4 cm): g/kg is dose / 50 kg exactly.
SHORT = {"height_cm": 150.0, "weight_kg": 50.0, "sex": "F"}


@pytest.mark.parametrize(
    ("daily_g", "fires"),
    [([35.0, 35.0, 35.0], False), ([35.0, 35.0, 35.5], True), ([35.0, 35.0, 34.5], False)],
    ids=["at-2.1", "above", "below"],
)
def test_dose_above_max_limit(guideline: Guideline, daily_g: list[float], fires: bool) -> None:
    """DOSE_ABOVE_MAX fires only above 2.0 g/kg x 1.05 = 2.1 g/kg (105 g for 50 kg)."""
    result = audit_rows(guideline, f.cycle("P1", "2025-01-06", daily_g, **SHORT))
    assert bool(codes(result, "DOSE_ABOVE_MAX")) is fires


def test_dose_above_max_reports_excess_grams(guideline: Guideline) -> None:
    """A 120 kg, 183 cm man dosed 2 g/kg on actual weight is flagged with the excess over 2 g/kg IBW."""
    rows = f.cycle("P1", "2025-01-06", [80.0, 80.0, 80.0], weight_kg=120.0, height_cm=183.0, sex="M")
    result = audit_rows(guideline, rows)
    hit = result.findings.filter(rule_code="DOSE_ABOVE_MAX").row(0, named=True)
    ibw = 50.0 + 2.3 * (183.0 / 2.54 - 60.0)
    assert hit["excess_g"] == pytest.approx(240.0 - 2.0 * ibw)
    assert hit["observed"] == pytest.approx(240.0 / ibw)
    assert hit["limit"] == pytest.approx(2.1)
    assert hit["severity"] == "high"
    assert "84.6 g above the maximum" in hit["message"]


@pytest.mark.parametrize(
    ("daily_g", "fires"),
    [([23.75, 23.75], False), ([23.7, 23.7], True), ([23.8, 23.8], False)],
    ids=["at-0.95", "below", "above"],
)
def test_dose_below_min_limit(guideline: Guideline, daily_g: list[float], fires: bool) -> None:
    """DOSE_BELOW_MIN fires only below 1.0 g/kg x 0.95 = 0.95 g/kg (47.5 g for 50 kg)."""
    result = audit_rows(guideline, f.cycle("P1", "2025-01-06", daily_g, **SHORT))
    assert bool(codes(result, "DOSE_BELOW_MIN")) is fires


@pytest.mark.parametrize(
    ("daily_g", "fires"),
    [([52.5, 40.0], False), ([52.6, 40.0], True), ([52.4, 40.0], False)],
    ids=["at-1.05", "above", "below"],
)
def test_daily_dose_above_max_limit(guideline: Guideline, daily_g: list[float], fires: bool) -> None:
    """DAILY_DOSE_ABOVE_MAX fires only when a day exceeds 1.0 g/kg x 1.05 (52.5 g for 50 kg)."""
    result = audit_rows(guideline, f.cycle("P1", "2025-01-06", daily_g, **SHORT))
    assert bool(codes(result, "DAILY_DOSE_ABOVE_MAX")) is fires


def test_daily_dose_sums_bags_of_one_day_and_names_them(guideline: Guideline) -> None:
    """Two bags on one date are one infusion day; the finding names that day's administrations."""
    rows = [
        f.admin("P1", "2025-01-06 09:00", 30.0, admin_id="A-1", **SHORT),
        f.admin("P1", "2025-01-06 15:00", 25.0, admin_id="A-2", **SHORT),
        f.admin("P1", "2025-01-07 09:00", 40.0, admin_id="A-3", **SHORT),
    ]
    result = audit_rows(guideline, rows)
    hit = result.findings.filter(rule_code="DAILY_DOSE_ABOVE_MAX").row(0, named=True)
    assert hit["admin_ids"] == ["A-1", "A-2"]
    assert hit["observed"] == pytest.approx(55.0 / 50.0)
    assert result.cycles.row(0, named=True)["infusion_days"] == 2


@pytest.mark.parametrize(
    ("daily_g", "fires"),
    [([40.0, 40.0], False), ([40.0, 40.5], True), ([30.0, 30.0, 30.0], False)],
    ids=["80g-2days", "80.5g-2days", "90g-3days"],
)
def test_large_dose_not_spread(guideline: Guideline, daily_g: list[float], fires: bool) -> None:
    """LARGE_DOSE_NOT_SPREAD fires for more than 80 g over fewer than 3 infusion days."""
    rows = f.cycle("P1", "2025-01-06", daily_g, height_cm=150.0, weight_kg=100.0, sex="F")
    assert bool(codes(audit_rows(guideline, rows), "LARGE_DOSE_NOT_SPREAD")) is fires


@pytest.mark.parametrize(("step", "fires"), [(1, False), (2, True), (3, True)])
def test_days_not_consecutive(guideline: Guideline, step: int, fires: bool) -> None:
    """DAYS_NOT_CONSECUTIVE fires when successive infusion days are more than 1 day apart (same cycle)."""
    rows = f.cycle("P1", "2025-01-06", [25.0, 25.0], day_step=step, **SHORT)
    result = audit_rows(guideline, rows)
    assert result.cycles.height == 1
    assert bool(codes(result, "DAYS_NOT_CONSECUTIVE")) is fires


@pytest.mark.parametrize(("days", "fires"), [(4, False), (5, False), (6, True)])
def test_too_many_infusion_days(guideline: Guideline, days: int, fires: bool) -> None:
    """TOO_MANY_INFUSION_DAYS fires above 5 infusion days in a cycle."""
    rows = f.cycle("P1", "2025-01-06", [100.0 / days] * days, **SHORT)
    assert bool(codes(audit_rows(guideline, rows), "TOO_MANY_INFUSION_DAYS")) is fires


@pytest.mark.parametrize(
    ("patient", "fires"),
    [
        ({"sex": None, "height_cm": 170.0}, True),
        ({"sex": "F", "height_cm": None}, True),
        ({"sex": None, "height_cm": 152.4}, True),
        ({"sex": None, "height_cm": 152.3}, False),
        ({"sex": None, "height_cm": None, "birth_date": __import__("datetime").date(2010, 1, 1)}, False),
        ({"sex": "M", "height_cm": 170.0}, False),
    ],
    ids=["no-sex", "no-height", "no-sex-at-152.4", "no-sex-short", "minor", "known"],
)
def test_dosing_weight_unknown(guideline: Guideline, patient: dict[str, object], fires: bool) -> None:
    """DOSING_WEIGHT_UNKNOWN fires when IBW is needed but sex or height is missing."""
    rows = f.cycle("P1", "2025-01-06", [200.0, 200.0], weight_kg=70.0, **patient)  # type: ignore[arg-type]
    result = audit_rows(guideline, rows)
    assert bool(codes(result, "DOSING_WEIGHT_UNKNOWN")) is fires


def test_unknown_weight_skips_g_per_kg_rules_only(guideline: Guideline) -> None:
    """With an unknown dosing weight the g/kg rules are not evaluated; the others still are."""
    rows = f.cycle("P1", "2025-01-06", [200.0, 200.0], weight_kg=70.0, sex=None, height_cm=170.0)
    found = {c for _, _, c in codes(audit_rows(guideline, rows))}
    assert found == {"DOSING_WEIGHT_UNKNOWN", "LARGE_DOSE_NOT_SPREAD"}


@pytest.mark.parametrize(
    ("lab_at", "fires"),
    [("2025-01-06 09:00", False), ("2025-01-06 09:01", True), ("2025-01-06", False), ("2025-01-05 23:59", False)],
    ids=["same-instant", "minute-after", "date-only-same-day", "day-before"],
)
def test_iga_not_screened(guideline: Guideline, lab_at: str, fires: bool) -> None:
    """IGA_NOT_SCREENED fires when no IgA result is collected at or before the first administration."""
    rows = f.cycle("P1", "2025-01-06", [25.0, 25.0], **SHORT)
    labs = f.labs([("P1", lab_at, 120.0, None)])
    assert bool(codes(audit_rows(guideline, rows, labs=labs), "IGA_NOT_SCREENED")) is fires


def test_iga_not_screened_only_on_first_cycle_of_each_course(guideline: Guideline) -> None:
    """IGA_NOT_SCREENED names each course's first cycle only; a result before course 1 screens course 2."""
    rows = (
        f.cycle("P1", "2025-01-06", [25.0, 25.0], **SHORT)
        + f.cycle("P1", "2025-02-03", [25.0, 25.0], **SHORT)
        + f.cycle("P1", "2025-09-01", [25.0, 25.0], **SHORT)
    )
    unscreened = audit_rows(guideline, rows, labs=f.labs([]))
    assert codes(unscreened, "IGA_NOT_SCREENED") == [
        ("P1-C1", 1, "IGA_NOT_SCREENED"),
        ("P1-C2", 1, "IGA_NOT_SCREENED"),
    ]
    later = audit_rows(guideline, rows, labs=f.labs([("P1", "2025-03-01", 100.0, None)]))
    assert codes(later, "IGA_NOT_SCREENED") == [("P1-C1", 1, "IGA_NOT_SCREENED")]


@pytest.mark.parametrize(
    ("value", "censor", "fires"),
    [(7.0, None, False), (6.99, None, True), (7.01, None, False), (50.0, "<", True), (5.0, ">", False)],
    ids=["at-7", "below", "above", "censored-below", "censored-above"],
)
def test_iga_deficient_standard_product(guideline: Guideline, value: float, censor: str | None, fires: bool) -> None:
    """IGA_DEFICIENT_STANDARD_PRODUCT: IgA below 7 mg/dL (or "<X") and Privigen given."""
    rows = f.cycle("P1", "2025-01-06", [25.0, 25.0], **SHORT)
    labs = f.labs([("P1", "2024-12-20", value, censor)])
    assert bool(codes(audit_rows(guideline, rows, labs=labs), "IGA_DEFICIENT_STANDARD_PRODUCT")) is fires


def test_iga_deficient_uses_latest_result_before_cycle(guideline: Guideline) -> None:
    """Only the latest result at or before the cycle's first administration counts."""
    rows = f.cycle("P1", "2025-01-06", [25.0, 25.0], **SHORT)
    normal_later = f.labs([("P1", "2024-11-01", 3.0, None), ("P1", "2024-12-01", 80.0, None)])
    deficient_later = f.labs([("P1", "2024-11-01", 80.0, None), ("P1", "2024-12-01", 3.0, None)])
    after_start = f.labs([("P1", "2024-11-01", 80.0, None), ("P1", "2025-01-07", 3.0, None)])
    rule = "IGA_DEFICIENT_STANDARD_PRODUCT"
    assert not codes(audit_rows(guideline, rows, labs=normal_later), rule)
    assert codes(audit_rows(guideline, rows, labs=deficient_later), rule)
    assert not codes(audit_rows(guideline, rows, labs=after_start), rule)


def test_iga_deficient_accepts_reduced_iga_product(guideline: Guideline) -> None:
    """A cycle of only an IgA-reduced product is fine; one standard bag in it is not."""
    labs = f.labs([("P1", "2024-12-20", 2.0, None)])
    reduced = f.cycle("P1", "2025-01-06", [25.0, 25.0], product="Gammagard S/D", **SHORT)
    mixed = reduced[:1] + f.cycle("P1", "2025-01-07", [25.0], **SHORT)
    rule = "IGA_DEFICIENT_STANDARD_PRODUCT"
    assert not codes(audit_rows(guideline, reduced, labs=labs), rule)
    assert codes(audit_rows(guideline, mixed, labs=labs), rule)


def _monthly(starts: list[str]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for start in starts:
        rows += f.cycle("P1", start, [25.0, 25.0], **SHORT)
    return rows


@pytest.mark.parametrize(
    ("second_start", "rule", "fires"),
    [
        ("2025-01-27", "CYCLE_INTERVAL_SHORT", False),  # 21 days
        ("2025-01-26", "CYCLE_INTERVAL_SHORT", True),  # 20 days
        ("2025-01-28", "CYCLE_INTERVAL_SHORT", False),  # 22 days
        ("2025-02-10", "CYCLE_INTERVAL_LONG", False),  # 35 days
        ("2025-02-11", "CYCLE_INTERVAL_LONG", True),  # 36 days
        ("2025-02-09", "CYCLE_INTERVAL_LONG", False),  # 34 days
    ],
)
def test_cycle_interval_limits(guideline: Guideline, second_start: str, rule: str, fires: bool) -> None:
    """Intervals between cycle starts below 21 or above 35 days are flagged on the later cycle."""
    result = audit_rows(guideline, _monthly(["2025-01-06", second_start]))
    assert codes(result, rule) == ([("P1-C1", 2, rule)] if fires else [])


@pytest.mark.parametrize(("gap_days", "cycles"), [(3, 1), (4, 2)])
def test_cycle_split_after_three_days(guideline: Guideline, gap_days: int, cycles: int) -> None:
    """An infusion day at most 3 days after the previous one stays in the cycle (Friday-Monday)."""
    rows = f.cycle("P1", "2025-01-03", [25.0, 25.0], day_step=gap_days, **SHORT)
    assert audit_rows(guideline, rows).cycles.height == cycles


@pytest.mark.parametrize(("gap_days", "courses"), [(90, 1), (91, 2)])
def test_course_split_after_ninety_days(guideline: Guideline, gap_days: int, courses: int) -> None:
    """A cycle starting at most 90 days after the previous start stays in the course."""
    from datetime import date, timedelta

    second = (date(2025, 1, 6) + timedelta(days=gap_days)).isoformat()
    result = audit_rows(guideline, _monthly(["2025-01-06", second]))
    assert result.cycles["course_id"].n_unique() == courses
    assert result.cycles["cycle_number"].to_list() == ([1, 2] if courses == 1 else [1, 1])


def _starts(n: int) -> list[str]:
    from datetime import date, timedelta

    return [(date(2025, 1, 6) + timedelta(days=28 * i)).isoformat() for i in range(n)]


@pytest.mark.parametrize(
    ("n_cycles", "review", "fires"),
    [
        (6, None, False),
        (7, None, True),
        (8, None, True),
        (7, "cycle3", False),
        (7, "cycle7", False),
        (7, "before3", True),
        (7, "after7", True),
    ],
)
def test_course_beyond_six_cycles_no_review(
    guideline: Guideline, n_cycles: int, review: str | None, fires: bool
) -> None:
    """Cycle 7 is flagged unless a review falls from the start of cycle 3 to the start of cycle 7."""
    from datetime import date, timedelta

    starts = _starts(n_cycles)
    when = {
        "cycle3": starts[2],
        "cycle7": starts[min(6, n_cycles - 1)],
        "before3": (date.fromisoformat(starts[2]) - timedelta(days=1)).isoformat(),
        "after7": (date.fromisoformat(starts[min(6, n_cycles - 1)]) + timedelta(days=1)).isoformat(),
    }
    reviews = f.reviews([("P1", when[review])] if review else [])
    result = audit_rows(guideline, _monthly(starts), reviews=reviews)
    rule = "COURSE_BEYOND_6_CYCLES_NO_REVIEW"
    assert codes(result, rule) == ([("P1-C1", 7, rule)] if fires else [])


def test_proderm_schedule_raises_nothing(guideline: Guideline) -> None:
    """2 g/kg IBW every 4 weeks over 5 consecutive days (ProDERM) raises no exception."""
    ibw = 45.5 + 2.3 * (165.0 / 2.54 - 60.0)
    rows: list[dict[str, object]] = []
    for start in _starts(4):
        rows += f.cycle("P1", start, [2.0 * ibw / 5] * 5, height_cm=165.0, weight_kg=80.0, sex="F")
    assert codes(audit_rows(guideline, rows)) == []


def test_two_day_cycle_above_80g_raises_only_large_dose(guideline: Guideline) -> None:
    """2 g/kg IBW over 2 days above 80 g raises only LARGE_DOSE_NOT_SPREAD."""
    ibw = 50.0 + 2.3 * (183.0 / 2.54 - 60.0)
    rows = f.cycle("P1", "2025-01-06", [ibw, ibw], height_cm=183.0, weight_kg=95.0, sex="M")
    assert codes(audit_rows(guideline, rows)) == [("P1-C1", 1, "LARGE_DOSE_NOT_SPREAD")]


def test_period_limits_reported_cycles_but_keeps_history(guideline: Guideline) -> None:
    """Only cycles starting in the period are reported; numbering and intervals use all history."""
    from datetime import date

    result = audit_rows(
        guideline,
        _monthly(["2025-01-06", "2025-01-20", "2025-02-03"]),
        labs=f.labs([]),
        period_start=date(2025, 1, 20),
        period_end=date(2025, 1, 20),
    )
    assert codes(result) == [("P1-C1", 2, "CYCLE_INTERVAL_SHORT")]
    assert result.counts["cycles"] == 1
    assert result.cycles.filter("in_period")["cycle_number"].to_list() == [2]


def test_findings_sorted_by_severity_then_patient(guideline: Guideline) -> None:
    """Findings come high severity first, then by patient and cycle start."""
    rows = f.cycle("P2", "2025-01-06", [25.0, 25.0], day_step=2, **SHORT) + f.cycle(
        "P1", "2025-01-06", [25.0, 25.0], **SHORT
    )
    result = audit_rows(guideline, rows, labs=f.screened("P2"))
    assert result.findings.select("severity", "patient_id").rows() == [("high", "P1"), ("low", "P2")]
