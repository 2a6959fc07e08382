"""Dosing weight (IBW, actual and why), grouping facts and indication scope."""

from __future__ import annotations

from datetime import date

import polars as pl
import pytest

from audit import courses, engine
from audit.courses import in_scope_mask
from audit.dosing import with_dosing_weight
from audit.guideline import Guideline
from tests.audit import factories as f
from tests.audit.conftest import audit_rows


def _basis(guideline: Guideline, **patient: object) -> dict[str, object]:
    rows = f.cycle("P1", "2025-01-06", [30.0, 30.0], **patient)  # type: ignore[arg-type]
    return audit_rows(guideline, rows).cycles.row(0, named=True)


def test_ibw_devine_female_and_male(guideline: Guideline) -> None:
    """IBW = 45.5 kg (F) or 50 kg (M) + 2.3 kg per inch over 60 in."""
    female = _basis(guideline, sex="F", height_cm=170.0, weight_kg=90.0)
    male = _basis(guideline, sex="M", height_cm=170.0, weight_kg=90.0)
    assert female["ibw_kg"] == pytest.approx(45.5 + 2.3 * (170 / 2.54 - 60))
    assert male["ibw_kg"] == pytest.approx(50.0 + 2.3 * (170 / 2.54 - 60))
    assert female["weight_basis"] == "ibw"
    assert female["dosing_weight_kg"] == pytest.approx(female["ibw_kg"])


@pytest.mark.parametrize(
    ("birth", "basis"),
    [(date(2007, 1, 7), "actual_minor"), (date(2007, 1, 6), "ibw"), (date(2007, 1, 5), "ibw")],
    ids=["day-before-18th-birthday", "18th-birthday", "day-after"],
)
def test_minor_uses_actual_weight(guideline: Guideline, birth: date, basis: str) -> None:
    """Under 18 at cycle start (2025-01-06) the actual weight is the dosing weight."""
    row = _basis(guideline, birth_date=birth, height_cm=170.0, weight_kg=90.0)
    assert row["weight_basis"] == basis
    assert row["age_years"] == (17 if basis == "actual_minor" else 18)


@pytest.mark.parametrize(("height", "basis"), [(152.3, "actual_short"), (152.4, "ibw"), (152.5, "ibw")])
def test_short_patient_uses_actual_weight(guideline: Guideline, height: float, basis: str) -> None:
    """Shorter than 152.4 cm (60 in) the actual weight is used."""
    assert _basis(guideline, height_cm=height, weight_kg=90.0)["weight_basis"] == basis


def test_lighter_than_ibw_uses_actual_weight(guideline: Guideline) -> None:
    """A patient lighter than IBW is dosed on actual weight; at IBW exactly, on IBW."""
    ibw = 45.5 + 2.3 * (170 / 2.54 - 60)
    light = _basis(guideline, height_cm=170.0, weight_kg=ibw - 0.1)
    equal = _basis(guideline, height_cm=170.0, weight_kg=ibw)
    assert light["weight_basis"] == "actual_lighter_than_ibw"
    assert light["dosing_weight_kg"] == pytest.approx(ibw - 0.1)
    assert equal["weight_basis"] == "ibw"


def test_dosing_weight_comes_from_first_administration(guideline: Guideline) -> None:
    """The cycle's dosing facts come from its first administration, whatever the row order."""
    rows = [
        f.admin("P1", "2025-01-07 09:00", 30.0, weight_kg=99.0, height_cm=150.0),
        f.admin("P1", "2025-01-06 09:00", 30.0, weight_kg=60.0, height_cm=150.0),
    ]
    row = audit_rows(guideline, rows).cycles.row(0, named=True)
    assert row["actual_weight_kg"] == 60.0
    assert row["dosing_weight_kg"] == 60.0


def test_with_dosing_weight_unknown_without_sex(guideline: Guideline) -> None:
    """An adult of normal height with no sex recorded has an unknown dosing weight."""
    cycles = pl.DataFrame(
        {
            "actual_weight_kg": [70.0],
            "height_cm": [170.0],
            "sex": [None],
            "birth_date": [date(1970, 1, 1)],
            "cycle_start": [date(2025, 1, 6)],
        },
        schema_overrides={"sex": pl.String},
    )
    row = with_dosing_weight(cycles, guideline).row(0, named=True)
    assert row["weight_basis"] == "unknown"
    assert row["dosing_weight_kg"] is None


@pytest.mark.parametrize(
    ("indication", "in_scope"),
    [
        ("M33.1", True),
        ("M33.10", True),
        ("M3310", True),
        ("m33.90", True),
        ("M33.02", True),
        (" Dermatomyositis ", True),
        ("juvenile DERMATOMYOSITIS", True),
        ("M33.2", False),
        ("M33", False),
        ("G61.81", False),
        ("polymyositis", False),
    ],
)
def test_scope_by_icd10_code_or_text(guideline: Guideline, indication: str, in_scope: bool) -> None:
    """Dermatomyositis is M33.0/M33.1/M33.9 with or without the dot, or text containing the word."""
    df = pl.DataFrame({"indication": [indication]})
    assert df.select(in_scope_mask(guideline)).item() is in_scope


def test_out_of_scope_rows_are_listed_not_audited(guideline: Guideline) -> None:
    """Out-of-scope rows are counted and returned, and build no cycles."""
    rows = f.cycle("P1", "2025-01-06", [30.0, 30.0], indication="G61.81") + f.cycle("P2", "2025-01-06", [30.0, 30.0])
    result = audit_rows(guideline, rows)
    assert result.counts["rows_out_of_scope"] == 2
    assert result.counts["rows_audited"] == 2
    assert result.cycles["patient_id"].to_list() == ["P2"]
    assert result.out_of_scope["patient_id"].to_list() == ["P1", "P1"]


def _tied_rows() -> list[dict[str, object]]:
    """Two patients; P1 has three administrations at one instant, written out of admin_id order."""
    return [
        f.admin("P1", "2025-01-06 09:00", 10.0, weight_kg=80.0, admin_id="A3"),
        f.admin("P2", "2025-01-06 09:00", 20.0, admin_id="B1"),
        f.admin("P1", "2025-01-06 09:00", 10.0, weight_kg=60.0, admin_id="A1"),
        f.admin("P1", "2025-01-07 09:00", 10.0, admin_id="A0"),
        f.admin("P1", "2025-01-06 09:00", 10.0, weight_kg=70.0, admin_id="A2"),
    ]


@pytest.mark.parametrize("reverse", [False, True])
def test_administrations_at_one_instant_are_taken_in_admin_id_order(guideline: Guideline, reverse: bool) -> None:
    """Ties on (patient, instant) are broken by admin_id whatever the row order: the first
    administration (A1) gives the dosing facts and the ids are listed in that order."""
    rows = _tied_rows()[::-1] if reverse else _tied_rows()
    cycles = audit_rows(guideline, rows).cycles
    p1 = cycles.filter(pl.col("patient_id") == "P1").row(0, named=True)
    assert p1["admin_ids"] == ["A1", "A2", "A3", "A0"]
    assert p1["actual_weight_kg"] == 60.0
    assert p1["administrations"] == 4


def _product_frame(products: int) -> pl.DataFrame:
    """Three cycles' administrations over ``products`` distinct product names, rows in no particular order."""
    names = [f"Product {i:03d}" for i in range(products)]
    rows = [(seq, names[(seq * 7 + k * 13) % products]) for seq in (0, 1, 2) for k in range(products + 5)]
    rows.append((1, names[0]))
    return pl.DataFrame(rows, schema={"cycle_seq": pl.UInt32, "product": pl.String}, orient="row")


@pytest.mark.parametrize("products", [1, 4, 64, 65, 70])
def test_product_lists_are_each_cycles_distinct_products_sorted(products: int) -> None:
    """Both ways of listing a cycle's products (a 64-bit mask up to 64 products, integer pairs beyond)
    give the sorted distinct names, joined with "; ", in cycle order."""
    frame = _product_frame(products)
    expected = [
        "; ".join(sorted(set(frame.filter(pl.col("cycle_seq") == seq).get_column("product").to_list())))
        for seq in (0, 1, 2)
    ]
    names = courses.product_names(frame)
    coded = frame.with_columns(_product=pl.col("product").cast(pl.Enum(names)).to_physical().cast(pl.UInt32))
    listed = courses._product_lists(coded, names)
    assert listed.get_column("cycle_seq").to_list() == [0, 1, 2]
    assert listed.get_column("products").to_list() == expected


def _admins(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """``(admin_id, patient_id, administered_at)`` rows with the integer patient key added."""
    frame = pl.DataFrame(rows, schema=["admin_id", "patient_id", "administered_at"], orient="row")
    return frame.with_columns(
        pl.col("administered_at").str.to_datetime(time_unit="us"), _pk=pl.col("patient_id").str.slice(1).cast(pl.UInt64)
    )


def _expected_order(frame: pl.DataFrame) -> list[str]:
    return frame.sort("_pk", "administered_at", "admin_id").get_column("admin_id").to_list()


@pytest.mark.parametrize(
    ("patients", "step"),
    [
        (3, "microsecond"),  # six years of microseconds times three patients fit 64 bits
        (2**20, "millisecond"),  # too many patients for microseconds: coarser steps
        (2**40, "minute"),
        (2**44, None),  # too many even for minutes: the three columns are sorted
    ],
)
def test_sort_by_patient_and_time_orders_by_patient_instant_and_admin_id(patients: int, step: str | None) -> None:
    """Whatever step the sort key takes (or none), rows come by patient, then instant, then
    admin_id, including instants that share a step (same second, same minute) and ties."""
    high = f"P{patients - 1}"
    rows = [
        ("A5", "P1", "2024-03-01 08:00:00.000002"),
        ("A4", "P1", "2024-03-01 08:00:00.000001"),
        ("A9", high, "2026-02-01 08:00:59"),
        ("A8", high, "2026-02-01 08:00:01"),
        ("A3", "P1", "2024-03-01 08:00:00.000001"),
        ("A7", "P0", "2025-01-01 00:00:00"),
        ("A6", "P1", "2020-01-01 00:00:00"),
        ("A2", high, "2026-02-01 08:00:01"),
    ]
    frame = _admins(rows)
    ordered = courses.sort_by_patient_and_time(frame)
    assert ordered.columns == frame.columns
    assert ordered.get_column("admin_id").to_list() == _expected_order(frame)


def test_sort_by_patient_and_time_with_nulls_sorts_the_three_columns() -> None:
    """A null patient key or instant can't be in the 64-bit key: sorted like the three columns."""
    frame = _admins([("A2", "P1", "2025-01-02 00:00:00"), ("A1", "P1", "2025-01-01 00:00:00"), ("A3", "P0", None)])
    frame = frame.vstack(frame.head(1).with_columns(admin_id=pl.lit("A0"), _pk=pl.lit(None, pl.UInt64)))
    assert courses.sort_by_patient_and_time(frame).get_column("admin_id").to_list() == _expected_order(frame)
    assert courses.sort_by_patient_and_time(frame.clear()).height == 0


def test_per_cycle_parts_are_joined_when_their_keys_do_not_line_up() -> None:
    """Side by side only when every part lists the same cycles in the same order; otherwise a join."""
    a = pl.DataFrame({"cycle_seq": [1, 2, 3], "x": ["a", "b", "c"]})
    b = pl.DataFrame({"cycle_seq": [1, 2, 3], "y": [10, 20, 30]})
    shuffled = pl.DataFrame({"cycle_seq": [3, 1, 2], "y": [30, 10, 20]})
    expected = [(1, "a", 10), (2, "b", 20), (3, "c", 30)]
    assert courses._side_by_side(a, b).rows() == expected
    assert courses._side_by_side(a, shuffled).rows() == expected


def test_days_get_their_cycles_columns_by_position_or_by_join() -> None:
    """Cycles numbered 1, 2, ... in row order are taken by position; in any other order, joined:
    each day gets its own cycle's columns either way, days in their order."""
    days = pl.DataFrame({"cycle_seq": [1, 1, 2, 3, 3, 3], "day_g": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    cycles = pl.DataFrame({"cycle_seq": [1, 2, 3], "course_id": ["P1-C1", "P1-C2", "P2-C1"]})
    expected = [(1, 1.0, "P1-C1"), (1, 2.0, "P1-C1"), (2, 3.0, "P1-C2"), (3, 4.0, "P2-C1")]
    expected += [(3, 5.0, "P2-C1"), (3, 6.0, "P2-C1")]
    assert engine._with_cycle_facts(days, cycles).rows() == expected
    assert engine._with_cycle_facts(days, cycles.reverse()).rows() == expected


def test_cycles_are_sorted_by_patient_and_start_from_any_order() -> None:
    """Patients' cycles together and in start order only need the patients sorted; any other
    order (a patient split in two, starts out of order, nulls) is sorted row by row."""
    together = pl.DataFrame(
        {
            "patient_id": ["P2", "P2", "P10", "P1", "P1"],
            "cycle_start": [date(2025, 1, 1), date(2025, 2, 1), date(2025, 1, 5), date(2024, 6, 1), date(2025, 3, 1)],
        }
    )
    expected = together.sort("patient_id", "cycle_start").rows()
    assert engine._by_patient_and_start(together).rows() == expected
    for other in (together.reverse(), together[[0, 3, 1, 2, 4]], together[[1, 0, 2, 3, 4]]):
        assert engine._by_patient_and_start(other).rows() == expected
    with_null = together.with_columns(
        patient_id=pl.when(pl.col("patient_id") == "P10").then(None).otherwise("patient_id")
    )
    assert engine._by_patient_and_start(with_null).rows() == with_null.sort("patient_id", "cycle_start").rows()
    assert engine._by_patient_and_start(together.clear()).height == 0
