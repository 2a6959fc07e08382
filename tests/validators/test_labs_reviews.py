"""load_labs and load_reviews: censoring, unit conversion, ignored tests, dates, accounting."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from audit.frames import LABS, REJECTED_KEYS, REVIEWS
from tests.validators.conftest import LAB_COLUMNS, NOW, REVIEW_COLUMNS, lab, review, write_csv
from validators.errors import InputError
from validators.io import Loaded
from validators.labs import load_labs
from validators.reviews import load_reviews


def labs(tmp_path: Path, *rows: dict[str, str]) -> Loaded:
    return load_labs(write_csv(tmp_path / "labs.csv", rows, LAB_COLUMNS), now=NOW)


def reviews(tmp_path: Path, *rows: dict[str, str]) -> Loaded:
    return load_reviews(write_csv(tmp_path / "reviews.csv", rows, REVIEW_COLUMNS), now=NOW)


def only_reason(loaded: Loaded) -> str:
    assert loaded.frame.height == 0
    assert loaded.rows_rejected == 1
    return str(loaded.rejected.item(0, "reason"))


# ------------------------------------------------------------------ labs
def test_good_lab_row_becomes_the_typed_frame(tmp_path: Path) -> None:
    """A valid IgA row gives one LABS row."""
    loaded = labs(tmp_path, lab())
    assert dict(loaded.frame.schema) == LABS
    assert loaded.frame.row(0, named=True) == {
        "source_file": str(tmp_path / "labs.csv"),
        "source_row": 2,
        "patient_id": "P1",
        "collected_at": datetime(2025, 3, 1, 8, 0),
        "iga_mg_dl": 120.0,
        "censor": None,
    }


@pytest.mark.parametrize(
    ("value", "unit", "iga_mg_dl", "censor"),
    [
        ("120", "mg/dL", 120.0, None),
        ("1.2", "g/L", 120.0, None),
        ("1200", "mg/L", 120.0, None),
        ("120", "MG/DL", 120.0, None),
        ("0.07", "g/l", 7.0, None),
        ("<5", "mg/dL", 5.0, "<"),
        ("< 5", "mg/dL", 5.0, "<"),
        ("<0.05", "g/L", 5.0, "<"),
        (">400", "mg/dL", 400.0, ">"),
        ("> 4", "g/L", 400.0, ">"),
        ("0", "mg/dL", 0.0, None),
    ],
)
def test_lab_values_censoring_and_units(
    tmp_path: Path, value: str, unit: str, iga_mg_dl: float, censor: str | None
) -> None:
    """Values convert to mg/dL (g/L x 100, mg/L / 10); <X and >X keep X and the sign."""
    row = labs(tmp_path, lab(value=value, unit=unit)).frame.row(0, named=True)
    assert (row["iga_mg_dl"], row["censor"]) == (pytest.approx(iga_mg_dl), censor)


@pytest.mark.parametrize("test", ["IgA", "iga", " IGA ", "2458-8"])
def test_iga_test_names(tmp_path: Path, test: str) -> None:
    """IgA is recognised by name (any case) or by LOINC 2458-8."""
    assert labs(tmp_path, lab(test=test)).frame.height == 1


def test_other_tests_are_ignored_and_counted(tmp_path: Path) -> None:
    """Rows of other tests are neither audited nor rejected, only counted; duplicates are counted first."""
    loaded = labs(
        tmp_path,
        lab(),
        lab(test="IgG", value="900"),
        lab(test="IgG", value="900"),
        lab(test="IgM", value="abc", unit="??"),
    )
    assert (loaded.frame.height, loaded.rows_ignored, loaded.rows_duplicate, loaded.rows_rejected) == (1, 2, 1, 0)
    assert loaded.rows_read == 4


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"value": "-3"}, "value: '-3' is negative"),
        ({"value": "abc"}, "value: 'abc' is not a number or a censored result like <5 or >400"),
        ({"value": "<=5"}, "value: '<=5' is not a number or a censored result like <5 or >400"),
        ({"value": ""}, "value: missing (required)"),
        ({"unit": "mmol/L"}, "unit: 'mmol/L' is not one of mg/dL, g/L, mg/L"),
        ({"unit": ""}, "unit: missing (required; one of mg/dL, g/L, mg/L)"),
        ({"test": ""}, "test: missing (required; IgA or 2458-8)"),
        ({"patient_id": ""}, "patient_id: missing (required)"),
        (
            {"collected_at": "2025-06-01 12:01"},
            "collected_at: '2025-06-01 12:01' is in the future (after 2025-06-01 12:00)",
        ),
        (
            {"collected_at": "March 1"},
            "collected_at: 'March 1' is not a date-time (expected ISO 8601 like 2025-03-04 09:30 or 2025-03-04)",
        ),
    ],
)
def test_bad_lab_rows_are_rejected(tmp_path: Path, changes: dict[str, str], expected: str) -> None:
    """Bad values, units, missing fields and future dates reject the IgA row with a reason."""
    assert only_reason(labs(tmp_path, lab(**changes))) == expected


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("2025-03-01", datetime(2025, 3, 1)),
        ("2025-03-01 08:15", datetime(2025, 3, 1, 8, 15)),
        ("2025-03-01T08:15:30", datetime(2025, 3, 1, 8, 15, 30)),
    ],
)
def test_collected_at_formats(tmp_path: Path, written: str, parsed: datetime) -> None:
    """collected_at is a date (taken as 00:00) or a date-time."""
    assert labs(tmp_path, lab(collected_at=written)).frame.item(0, "collected_at") == parsed


def test_lab_file_without_unit_column_is_an_input_error(tmp_path: Path) -> None:
    """A lab file without the unit column can't be used."""
    path = write_csv(tmp_path / "labs.csv", [lab()], [c for c in LAB_COLUMNS if c != "unit"])
    with pytest.raises(InputError, match=r"labs\.csv: missing required columns: unit$"):
        load_labs(path, now=NOW)


# ------------------------------------------------------------------ reviews
def test_good_review_row_becomes_the_typed_frame(tmp_path: Path) -> None:
    """A valid review gives one REVIEWS row."""
    loaded = reviews(tmp_path, review())
    assert dict(loaded.frame.schema) == REVIEWS
    assert loaded.frame.row(0, named=True) == {
        "source_file": str(tmp_path / "reviews.csv"),
        "source_row": 2,
        "patient_id": "P1",
        "reviewed_on": date(2025, 4, 1),
        "note": "continue",
    }


@pytest.mark.parametrize(
    ("written", "parsed"),
    [("2025-04-01", date(2025, 4, 1)), ("2025-04-01 14:30", date(2025, 4, 1)), ("2025-06-01", date(2025, 6, 1))],
)
def test_reviewed_on_formats(tmp_path: Path, written: str, parsed: date) -> None:
    """reviewed_on is a date; a date-time gives its date; today is fine."""
    assert reviews(tmp_path, review(reviewed_on=written)).frame.item(0, "reviewed_on") == parsed


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"reviewed_on": "2025-06-02"}, "reviewed_on: '2025-06-02' is in the future (after 2025-06-01)"),
        ({"reviewed_on": "1/4/2025"}, "reviewed_on: '1/4/2025' is not a date (expected ISO 8601 like 2025-03-04)"),
        ({"reviewed_on": ""}, "reviewed_on: missing (required)"),
        ({"patient_id": ""}, "patient_id: missing (required)"),
    ],
)
def test_bad_reviews_are_rejected(tmp_path: Path, changes: dict[str, str], expected: str) -> None:
    """A review needs a patient and a past or present date."""
    assert only_reason(reviews(tmp_path, review(**changes))) == expected


def test_note_is_optional(tmp_path: Path) -> None:
    """A reviews file without the note column loads with null notes."""
    path = write_csv(tmp_path / "reviews.csv", [review()], ["patient_id", "reviewed_on"])
    loaded = load_reviews(path, now=NOW)
    assert loaded.frame.item(0, "note") is None
    assert loaded.rejected.columns == [*REJECTED_KEYS, "patient_id", "reviewed_on"]


def test_duplicate_reviews_are_counted_once(tmp_path: Path) -> None:
    """Identical review rows count as duplicates."""
    loaded = reviews(tmp_path, review(), review(), review(note="other"))
    assert (loaded.rows_read, loaded.frame.height, loaded.rows_duplicate) == (3, 2, 1)
