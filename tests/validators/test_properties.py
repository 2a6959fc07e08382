"""Property tests: nothing is lost, and the order of input rows doesn't change the outcome."""

from __future__ import annotations

import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.guideline import Guideline
from tests.validators.conftest import INFUSION_COLUMNS, LAB_COLUMNS, NOW, infusion, lab, write_csv
from validators.guideline_source import load_guideline
from validators.infusions import load_infusions
from validators.io import Loaded
from validators.labs import load_labs

GUIDELINE: Guideline = load_guideline()

BAD_INFUSION_CHANGES: tuple[dict[str, str], ...] = (
    {"dose": "-5"},
    {"dose_unit": "units"},
    {"weight": "0.99"},
    {"weight": "400.01"},
    {"height": "250.01"},
    {"height_unit": ""},
    {"administered_at": "2025-13-45"},
    {"administered_at": "2030-01-01 10:00"},
    {"product": "Hizentra"},
    {"sex": "X"},
    {"patient_id": ""},
    {"dose": "1,5", "weight_unit": "st"},
)

BAD_LAB_CHANGES: tuple[dict[str, str], ...] = (
    {"value": "-1"},
    {"unit": "mmol/L"},
    {"collected_at": "2030-01-01"},
    {"value": "<x"},
    {"patient_id": ""},
)

KINDS = st.sampled_from(("good", "bad", "duplicate", "conflict", "other"))
SPECS = st.lists(st.tuples(KINDS, st.integers(min_value=0, max_value=1000)), max_size=25)


def infusion_rows(specs: list[tuple[str, int]]) -> list[dict[str, str]]:
    """Good, bad, duplicated and conflicting infusion rows from a list of (kind, number)."""
    rows: list[dict[str, str]] = []
    for i, (kind, n) in enumerate(specs):
        if kind in {"duplicate", "conflict"} and rows:
            earlier = rows[n % len(rows)]
            rows.append(dict(earlier) if kind == "duplicate" else {**earlier, "dose": str(n % 7 + 50)})
        elif kind == "bad":
            rows.append(infusion(**{"admin_id": f"A{i}", **BAD_INFUSION_CHANGES[n % len(BAD_INFUSION_CHANGES)]}))
        else:
            rows.append(infusion(admin_id=f"A{i}", patient_id=f"P{n % 5}", dose=str(10 + n % 40)))
    return rows


def lab_rows(specs: list[tuple[str, int]]) -> list[dict[str, str]]:
    """Good, bad, duplicated and other-test lab rows from a list of (kind, number)."""
    rows: list[dict[str, str]] = []
    for kind, n in specs:
        if kind == "duplicate" and rows:
            rows.append(dict(rows[n % len(rows)]))
        elif kind == "bad":
            rows.append(lab(**{"patient_id": f"P{n % 5}", **BAD_LAB_CHANGES[n % len(BAD_LAB_CHANGES)]}))
        elif kind == "other":
            rows.append(lab(patient_id=f"P{n % 5}", test="IgG", value=str(n)))
        else:
            rows.append(lab(patient_id=f"P{n % 5}", value=str(n % 300)))
    return rows


def accounted(loaded: Loaded) -> int:
    return loaded.frame.height + loaded.rows_duplicate + loaded.rows_rejected + loaded.rows_ignored


def outcome(loaded: Loaded) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """What the loader decided, independent of line numbers: typed rows and rejected (values, reason)."""
    typed = loaded.frame.drop("source_file", "source_row").sort(pl.all())
    rejected = loaded.rejected.drop("source_file", "source_row").with_columns(
        pl.col("reason").str.replace_all(r"\(lines [^)]*\)", "(lines …)")
    )
    return typed.rows(), sorted(rejected.rows(), key=repr)


@settings(max_examples=40, deadline=None)
@given(specs=SPECS, data=st.data())
def test_infusion_rows_are_all_accounted_for_in_any_order(specs: list[tuple[str, int]], data: st.DataObject) -> None:
    """rows_read = typed + duplicate + rejected + ignored, and shuffling the rows changes nothing but lines."""
    rows = infusion_rows(specs)
    shuffled = data.draw(st.permutations(rows))
    with tempfile.TemporaryDirectory() as folder:
        first = load_infusions(write_csv(Path(folder) / "a.csv", rows, INFUSION_COLUMNS), GUIDELINE, now=NOW)
        second = load_infusions(write_csv(Path(folder) / "b.csv", shuffled, INFUSION_COLUMNS), GUIDELINE, now=NOW)
    for loaded in (first, second):
        assert loaded.rows_read == len(rows) == accounted(loaded)
    assert (first.rows_duplicate, first.rows_rejected) == (second.rows_duplicate, second.rows_rejected)
    assert outcome(first) == outcome(second)
    assert first.frame.get_column("admin_id").is_unique().all()


@settings(max_examples=40, deadline=None)
@given(specs=SPECS, data=st.data())
def test_lab_rows_are_all_accounted_for_in_any_order(specs: list[tuple[str, int]], data: st.DataObject) -> None:
    """Labs keep the same accounting with ignored tests, and the same outcome in any row order."""
    rows = lab_rows(specs)
    shuffled = data.draw(st.permutations(rows))
    with tempfile.TemporaryDirectory() as folder:
        first = load_labs(write_csv(Path(folder) / "a.csv", rows, LAB_COLUMNS), now=NOW)
        second = load_labs(write_csv(Path(folder) / "b.csv", shuffled, LAB_COLUMNS), now=NOW)
    for loaded in (first, second):
        assert loaded.rows_read == len(rows) == accounted(loaded)
    assert first.rows_ignored == second.rows_ignored
    assert outcome(first) == outcome(second)
