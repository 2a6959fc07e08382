"""An independent, plain-Python reference implementation of the audit rules.

Written only from ``shared/spec/GUIDELINE.md`` (and the table shapes in
``audit/frames.py``), without looking at the engine, so that a differential test
(``tests/audit/test_reference_agreement.py``) can compare the two, and a
benchmark can time the engine against something obvious. Standard library only:
no dataframe library. Every number comes from the loaded guideline profile.

Input: the rows of the typed frames (``frame.to_dicts()``) of ``audit.frames``
INFUSIONS, LABS and REVIEWS. Output: one dict per exception.

Decisions where GUIDELINE.md is silent (each is repeated where it is coded):

* Scope: the indication is trimmed; an ICD-10-CM code matches its prefixes
  case-insensitively, with or without the dot (``M33.1``, ``M331``, ``m33.10``);
  the text term matches anywhere, any case. A missing indication is out of scope.
  Out-of-scope rows play no part at all (not in days, cycles, totals or products).
* Age: completed years between ``birth_date`` and the cycle's start *date*
  (the usual birthday rule: a 29 February birthday is reached on 1 March in a
  common year).
* Sex: only ``F`` / ``M`` (any case) give an IBW; anything else is unknown.
* "Lighter than IBW" is strict (``weight < IBW``); at equality IBW is used (the
  same number anyway).
* IgA results with the same ``collected_at`` as the latest one are all "the
  latest"; the cycle counts as deficient when **any** of them is deficient
  (conservative: a possible deficiency must not be hidden by row order). The
  observed value is then the smallest value (mg/dL) among those deficient results.
* A lab row with no value and no censor counts as a result (screened) but not as
  deficient.
* A product name not in the catalog counts as not IgA-reduced.
* Observed values: g/kg for the three dose rules (the cycle's, or the highest
  day's), days for DAYS_NOT_CONSECUTIVE (the largest gap) and the interval
  rules, the number of infusion days for LARGE_DOSE_NOT_SPREAD and
  TOO_MANY_INFUSION_DAYS, mg/dL for
  IGA_DEFICIENT_STANDARD_PRODUCT, the cycle number (7, limit 6) for
  COURSE_BEYOND_6_CYCLES_NO_REVIEW, and null for DOSING_WEIGHT_UNKNOWN and
  IGA_NOT_SCREENED (nothing measured). These are reporting conventions, not
  rule semantics; after a first comparison they were aligned with the engine's
  (LARGE_DOSE_NOT_SPREAD: infusion days rather than grams; the review rule: the
  cycle number rather than null).
* COURSE_BEYOND_6_CYCLES_NO_REVIEW fires on cycle 7 only (GUIDELINE.md: "cycle 7
  of a course (the first beyond 6)"), never again on cycles 8, 9, ...
* Rules disabled in the profile (``enabled = false``) do not run.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from audit.guideline import RULE_CODES, Guideline

DOSE_RULES = frozenset({"DOSE_ABOVE_MAX", "DOSE_BELOW_MIN", "DAILY_DOSE_ABOVE_MAX"})


# ------------------------------------------------------------------ helpers
def in_scope(indication: str | None, guideline: Guideline) -> bool:
    """Is this row's indication dermatomyositis (ICD-10-CM prefix or text term)?"""
    if indication is None:
        return False
    text = indication.strip()
    folded = text.casefold()
    # Decision: codes are matched case-insensitively, with or without the dot.
    undotted = folded.replace(".", "")
    for prefix in guideline.scope.icd10_prefixes:
        p = prefix.strip().casefold()
        if folded.startswith(p) or undotted.startswith(p.replace(".", "")):
            return True
    return any(term.casefold() in folded for term in guideline.scope.text_terms)


def completed_years(birth: date, on: date) -> int:
    """Age in completed years on ``on`` (a 29 February birthday counts on 1 March)."""
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def ibw_kg(sex: str | None, height_cm: float | None, g: Guideline) -> float | None:
    """Devine ideal body weight, or None when sex or height is missing."""
    if height_cm is None or sex is None:
        return None
    s = sex.strip().upper()
    if s == "M":
        base = g.value("ibw_base_male_kg")
    elif s == "F":
        base = g.value("ibw_base_female_kg")
    else:
        return None
    height_in = height_cm / 2.54
    return base + g.value("ibw_kg_per_inch") * (height_in - g.value("ibw_base_height_in"))


def dosing_weight(row: dict[str, Any], cycle_start: date, g: Guideline) -> tuple[float | None, str]:
    """(dosing weight kg, basis) from a cycle's first administration row."""
    weight = row["weight_kg"]
    height = row["height_cm"]
    birth = row["birth_date"]
    if birth is not None and completed_years(birth, cycle_start) < g.value("adult_age_years"):
        return weight, "actual (under 18)"
    if height is not None and height < g.value("short_height_cm"):
        return weight, "actual (short)"
    ibw = ibw_kg(row["sex"], height, g)
    if ibw is None:
        return None, "unknown"
    if weight < ibw:  # Decision: strict; at equality IBW (the same number).
        return weight, "actual (below IBW)"
    return ibw, "ideal"


def is_deficient(value: float | None, censor: str | None, threshold_mg_dl: float) -> bool:
    """``<X`` is deficient whatever X; ``>X`` is not; otherwise value < threshold."""
    if censor == "<":
        return True
    if censor == ">":
        return False
    return value is not None and value < threshold_mg_dl


@dataclass
class Day:
    on: date
    dose_g: float = 0.0
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Cycle:
    patient_id: str
    days: list[Day]
    course_no: int = 0
    cycle_number: int = 0
    interval_days: int | None = None

    @property
    def start(self) -> date:
        return self.days[0].on

    @property
    def course_id(self) -> str:
        return f"{self.patient_id}-C{self.course_no}"

    def rows(self) -> list[dict[str, Any]]:
        return sorted((r for d in self.days for r in d.rows), key=lambda r: (r["administered_at"], r["admin_id"]))


class _Labs:
    """A patient's IgA results, sorted by collection time, for 'latest at or before' look-ups."""

    def __init__(self, rows: Iterable[dict[str, Any]]) -> None:
        ordered = sorted(rows, key=lambda r: r["collected_at"])
        self.times: list[datetime] = [r["collected_at"] for r in ordered]
        self.rows = ordered

    def any_at_or_before(self, t: datetime) -> bool:
        return bool(self.times) and self.times[0] <= t

    def latest_at_or_before(self, t: datetime) -> list[dict[str, Any]]:
        """Every result at the latest instant <= t (several when tied)."""
        hi = bisect.bisect_right(self.times, t)
        if hi == 0:
            return []
        lo = bisect.bisect_left(self.times, self.times[hi - 1])
        return self.rows[lo:hi]


# ------------------------------------------------------------------ grouping
def build_cycles(infusions: list[dict[str, Any]], g: Guideline) -> list[Cycle]:
    """In-scope rows -> infusion days -> cycles -> courses, for every patient."""
    cycle_gap = g.value("cycle_gap_max_days")
    course_gap = g.value("course_gap_max_days")
    by_patient: dict[str, dict[date, Day]] = defaultdict(dict)
    for row in infusions:
        if not in_scope(row["indication"], g):
            continue
        on = row["administered_at"].date()
        days = by_patient[row["patient_id"]]
        day = days.get(on)
        if day is None:
            day = days[on] = Day(on)
        day.rows.append(row)
    cycles: list[Cycle] = []
    for patient_id in sorted(by_patient):
        days = [by_patient[patient_id][d] for d in sorted(by_patient[patient_id])]
        for day in days:
            day.rows.sort(key=lambda r: (r["administered_at"], r["admin_id"]))
            day.dose_g = sum(r["dose_g"] for r in day.rows)
        patient_cycles: list[Cycle] = []
        for day in days:
            if patient_cycles and (day.on - patient_cycles[-1].days[-1].on).days <= cycle_gap:
                patient_cycles[-1].days.append(day)
            else:
                patient_cycles.append(Cycle(patient_id, [day]))
        course_no = 0
        previous: Cycle | None = None
        for c in patient_cycles:
            if previous is None or (c.start - previous.start).days > course_gap:
                course_no += 1
                c.course_no, c.cycle_number = course_no, 1
            else:
                c.course_no, c.cycle_number = course_no, previous.cycle_number + 1
                c.interval_days = (c.start - previous.start).days
            previous = c
        cycles.extend(patient_cycles)
    return cycles


# ------------------------------------------------------------------ the audit
Hit = tuple[float | None, float | None, str]  # observed, limit, unit


@dataclass(frozen=True)
class Limits:
    """The profile's numbers, read once."""

    max_cycle_g_per_kg: float
    min_cycle_g_per_kg: float
    max_daily_g_per_kg: float
    large_dose_g: float
    large_dose_min_days: float
    max_gap_days: float
    max_infusion_days: float
    iga_deficiency_mg_dl: float
    min_interval_days: float
    max_interval_days: float
    review_cycle: int
    window_start_cycle: int
    is_reduced: dict[str, bool]

    @classmethod
    def of(cls, g: Guideline) -> Limits:
        tol = g.value("dose_tolerance_fraction")
        return cls(
            max_cycle_g_per_kg=g.value("max_g_per_kg") * (1 + tol),
            min_cycle_g_per_kg=g.value("min_g_per_kg") * (1 - tol),
            max_daily_g_per_kg=g.value("max_daily_g_per_kg") * (1 + tol),
            large_dose_g=g.value("large_dose_g"),
            large_dose_min_days=g.value("large_dose_min_days"),
            max_gap_days=g.value("max_gap_within_cycle_days"),
            max_infusion_days=g.value("max_infusion_days"),
            iga_deficiency_mg_dl=g.value("iga_deficiency_mg_dl"),
            min_interval_days=g.value("min_interval_days"),
            max_interval_days=g.value("max_interval_days"),
            review_cycle=int(g.value("max_cycles_without_review")) + 1,
            window_start_cycle=int(g.value("review_window_start_cycle")),
            is_reduced={name: p.is_iga_reduced for name, p in g.product_lookup().items()},
        )

    def product_is_reduced(self, product: str | None) -> bool:
        # Decision: a product not in the catalog counts as not IgA-reduced.
        return self.is_reduced.get(" ".join(str(product).casefold().split()), False)


def _dose_hits(c: Cycle, weight: float | None, lim: Limits) -> dict[str, Hit]:
    """DOSING_WEIGHT_UNKNOWN, or the three g/kg rules."""
    if weight is None:
        return {"DOSING_WEIGHT_UNKNOWN": (None, None, "")}
    hits: dict[str, Hit] = {}
    g_per_kg = sum(d.dose_g for d in c.days) / weight
    if g_per_kg > lim.max_cycle_g_per_kg:
        hits["DOSE_ABOVE_MAX"] = (g_per_kg, lim.max_cycle_g_per_kg, "g/kg")
    if g_per_kg < lim.min_cycle_g_per_kg:
        hits["DOSE_BELOW_MIN"] = (g_per_kg, lim.min_cycle_g_per_kg, "g/kg")
    max_day_g_per_kg = max(d.dose_g / weight for d in c.days)
    if max_day_g_per_kg > lim.max_daily_g_per_kg:
        hits["DAILY_DOSE_ABOVE_MAX"] = (max_day_g_per_kg, lim.max_daily_g_per_kg, "g/kg")
    return hits


def _shape_hits(c: Cycle, lim: Limits) -> dict[str, Hit]:
    """LARGE_DOSE_NOT_SPREAD, DAYS_NOT_CONSECUTIVE, TOO_MANY_INFUSION_DAYS, interval rules."""
    hits: dict[str, Hit] = {}
    total_g = sum(d.dose_g for d in c.days)
    n_days = len(c.days)
    if total_g > lim.large_dose_g and n_days < lim.large_dose_min_days:
        # Convention: observed = the number of infusion days, compared with the minimum number of days.
        hits["LARGE_DOSE_NOT_SPREAD"] = (float(n_days), lim.large_dose_min_days, "infusion days")
    if n_days > 1:
        gap = max((b.on - a.on).days for a, b in zip(c.days, c.days[1:], strict=False))
        if gap > lim.max_gap_days:
            hits["DAYS_NOT_CONSECUTIVE"] = (float(gap), lim.max_gap_days, "days")
    if n_days > lim.max_infusion_days:
        hits["TOO_MANY_INFUSION_DAYS"] = (float(n_days), lim.max_infusion_days, "infusion days")
    if c.interval_days is not None:
        if c.interval_days < lim.min_interval_days:
            hits["CYCLE_INTERVAL_SHORT"] = (float(c.interval_days), lim.min_interval_days, "days")
        if c.interval_days > lim.max_interval_days:
            hits["CYCLE_INTERVAL_LONG"] = (float(c.interval_days), lim.max_interval_days, "days")
    return hits


def _iga_hits(c: Cycle, rows: list[dict[str, Any]], lab: _Labs, lim: Limits) -> dict[str, Hit]:
    """IGA_NOT_SCREENED (cycle 1 of a course) and IGA_DEFICIENT_STANDARD_PRODUCT."""
    hits: dict[str, Hit] = {}
    first_at: datetime = rows[0]["administered_at"]
    # The course's first administration is this cycle's first one when cycle_number == 1.
    # A result collected exactly at that instant counts (dates without time are 00:00 already).
    if c.cycle_number == 1 and not lab.any_at_or_before(first_at):
        hits["IGA_NOT_SCREENED"] = (None, None, "")
    # Decision: with several results at the latest instant, any deficient one decides.
    deficient = [
        r
        for r in lab.latest_at_or_before(first_at)
        if is_deficient(r["iga_mg_dl"], r["censor"], lim.iga_deficiency_mg_dl)
    ]
    if deficient and any(not lim.product_is_reduced(r["product"]) for r in rows):
        values = [r["iga_mg_dl"] for r in deficient if r["iga_mg_dl"] is not None]
        hits["IGA_DEFICIENT_STANDARD_PRODUCT"] = (min(values) if values else None, lim.iga_deficiency_mg_dl, "mg/dL")
    return hits


def _review_hits(c: Cycle, window_from: date, review_dates: list[date], lim: Limits) -> dict[str, Hit]:
    """COURSE_BEYOND_6_CYCLES_NO_REVIEW: on cycle 7 only, no review in [start of cycle 3, start of cycle 7]."""
    if c.cycle_number != lim.review_cycle:
        return {}
    i = bisect.bisect_left(review_dates, window_from)
    if i < len(review_dates) and review_dates[i] <= c.start:
        return {}
    # Convention: observed = this cycle's number, compared with the cycles allowed without a review.
    return {"COURSE_BEYOND_6_CYCLES_NO_REVIEW": (float(c.cycle_number), float(lim.review_cycle - 1), "cycles")}


def reference_audit(
    infusions: list[dict[str, Any]],
    labs: list[dict[str, Any]],
    reviews: list[dict[str, Any]],
    guideline: Guideline,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
    rules: set[str] | None = None,
) -> list[dict[str, Any]]:
    """Every exception of GUIDELINE.md's rules, one dict per (rule, cycle), in cycle then rule order."""
    g = guideline
    if rules is not None and (unknown := set(rules) - set(RULE_CODES)):
        raise ValueError(f"unknown rule codes: {sorted(unknown)}")
    active = [c for c in g.enabled_rules() if rules is None or c in rules]
    on = set(active)
    lim = Limits.of(g)

    labs_by_patient: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for lab in labs:
        labs_by_patient[lab["patient_id"]].append(lab)
    patient_labs = {p: _Labs(rows) for p, rows in labs_by_patient.items()}
    review_dates: dict[str, list[date]] = defaultdict(list)
    for r in reviews:
        review_dates[r["patient_id"]].append(r["reviewed_on"])
    for dates in review_dates.values():
        dates.sort()

    cycles = build_cycles(infusions, g)
    starts = {(c.course_id, c.cycle_number): c.start for c in cycles}

    findings: list[dict[str, Any]] = []
    for c in cycles:
        if (period_start is not None and c.start < period_start) or (period_end is not None and c.start > period_end):
            continue
        rows = c.rows()
        hits: dict[str, Hit] = {}
        if on & (DOSE_RULES | {"DOSING_WEIGHT_UNKNOWN"}):
            hits |= _dose_hits(c, dosing_weight(rows[0], c.start, g)[0], lim)
        hits |= _shape_hits(c, lim)
        if on & {"IGA_NOT_SCREENED", "IGA_DEFICIENT_STANDARD_PRODUCT"}:
            hits |= _iga_hits(c, rows, patient_labs.get(c.patient_id, _Labs([])), lim)
        if "COURSE_BEYOND_6_CYCLES_NO_REVIEW" in on:
            # (a window start after the review cycle would be a profile error; then only its own start counts)
            window_from = starts.get((c.course_id, lim.window_start_cycle), c.start)
            hits |= _review_hits(c, window_from, review_dates.get(c.patient_id, []), lim)
        admin_ids = [r["admin_id"] for r in rows]
        for code in active:
            if code in hits:
                observed, limit, unit = hits[code]
                findings.append(
                    {
                        "rule_code": code,
                        "severity": g.rules[code].severity,
                        "patient_id": c.patient_id,
                        "course_id": c.course_id,
                        "cycle_number": c.cycle_number,
                        "cycle_start": c.start,
                        "observed": observed,
                        "limit": limit,
                        "unit": unit,
                        "admin_ids": admin_ids,
                    }
                )
    return findings
