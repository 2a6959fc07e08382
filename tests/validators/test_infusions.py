"""load_infusions: unit conversions, limits, formats, reasons, duplicates and the row accounting."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from audit.frames import INFUSIONS, REJECTED_KEYS
from audit.guideline import Guideline
from tests.validators.conftest import INFUSION_COLUMNS, NOW, infusion, write_csv
from validators.errors import InputError
from validators.infusions import load_infusions
from validators.io import Loaded

#: The tail of the reason for a date-time with a zone offset.
ZONED = "has a time-zone offset (expected local time, like 2025-03-04 09:30)"


def load(tmp_path: Path, guideline: Guideline, *rows: dict[str, str], name: str = "infusions.csv") -> Loaded:
    path = write_csv(tmp_path / name, rows, INFUSION_COLUMNS)
    return load_infusions(path, guideline, now=NOW)


def one(tmp_path: Path, guideline: Guideline, **changes: str) -> Loaded:
    return load(tmp_path, guideline, infusion(**changes))


def reason(loaded: Loaded) -> str:
    """The reason of the only rejected row."""
    assert loaded.frame.height == 0, "expected the row to be rejected"
    assert loaded.rows_rejected == 1
    return str(loaded.rejected.item(0, "reason"))


def accepted(loaded: Loaded) -> dict[str, object]:
    """The only typed row."""
    assert loaded.rows_rejected == 0, loaded.rejected.get_column("reason").to_list()
    assert loaded.frame.height == 1
    return loaded.frame.row(0, named=True)


# ------------------------------------------------------------------ the good row
def test_good_row_becomes_the_typed_frame(tmp_path: Path, guideline: Guideline) -> None:
    """A valid row gives one typed row with exactly the INFUSIONS columns and dtypes."""
    loaded = one(tmp_path, guideline)
    assert dict(loaded.frame.schema) == INFUSIONS
    assert accepted(loaded) == {
        "source_file": str(tmp_path / "infusions.csv"),
        "source_row": 2,
        "admin_id": "A1",
        "patient_id": "P1",
        "administered_at": datetime(2025, 3, 4, 9, 30),
        "product": "Privigen",
        "dose_g": 35.0,
        "weight_kg": 70.0,
        "height_cm": 170.0,
        "sex": "F",
        "birth_date": date(1980, 1, 2),
        "indication": "M33.1",
        "site": "North",
        "infusion_rate_mg_kg_min": None,
    }
    assert (loaded.rows_read, loaded.rows_duplicate, loaded.rows_rejected, loaded.rows_ignored) == (1, 0, 0, 0)


def test_rejected_frame_has_keys_then_original_columns(tmp_path: Path, guideline: Guideline) -> None:
    """Rejected rows carry source_file, source_row, reason, then the file's columns as text."""
    loaded = one(tmp_path, guideline, dose="-5")
    assert loaded.rejected.columns == [*REJECTED_KEYS, *INFUSION_COLUMNS]
    assert dict(loaded.rejected.schema) == {
        **REJECTED_KEYS,
        **dict.fromkeys(INFUSION_COLUMNS, pl.String()),
    }
    assert loaded.rejected.item(0, "dose") == "-5"
    assert loaded.rejected.item(0, "source_row") == 2


# ------------------------------------------------------------------ dose and units
@pytest.mark.parametrize(
    ("product", "dose", "unit", "dose_g"),
    [
        ("Privigen", "35", "g", 35.0),
        ("Privigen", "35000", "mg", 35.0),
        ("Privigen", "350", "mL", 35.0),
        ("Gammagard S/D", "350", "mL", 17.5),
        ("Privigen", "35", "G", 35.0),
        ("Privigen", "35000", "MG", 35.0),
        ("Privigen", "350", "ml", 35.0),
        ("Privigen", " 20 ", " g ", 20.0),
        ("Privigen", "1e1", "g", 10.0),
        ("Privigen", "0.5", "g", 0.5),
    ],
)
def test_dose_converts_to_grams(
    tmp_path: Path, guideline: Guideline, product: str, dose: str, unit: str, dose_g: float
) -> None:
    """g as is, mg / 1000, mL x the product's concentration; units in any case, spaces trimmed."""
    assert accepted(one(tmp_path, guideline, product=product, dose=dose, dose_unit=unit))["dose_g"] == pytest.approx(
        dose_g
    )


@pytest.mark.parametrize(
    ("dose", "expected"),
    [
        ("-5", "dose: '-5' is not a positive number"),
        ("0", "dose: '0' is not a positive number"),
        ("abc", "dose: 'abc' is not a number"),
        ("1,5", "dose: '1,5' is not a number (use a decimal point and no thousands separator, e.g. 1.5)"),
        ("nan", "dose: 'nan' is not a number"),
        ("", "dose: missing (required)"),
    ],
)
def test_bad_dose_is_rejected(tmp_path: Path, guideline: Guideline, dose: str, expected: str) -> None:
    """A dose that isn't a positive plain number is rejected with the value quoted."""
    assert reason(one(tmp_path, guideline, dose=dose)) == expected


def test_unknown_dose_unit_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A dose unit other than g, mg, mL is rejected naming the accepted units."""
    assert reason(one(tmp_path, guideline, dose_unit="units")) == "dose_unit: 'units' is not one of g, mg, mL"


def test_missing_dose_unit_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A blank dose unit is rejected as missing."""
    assert reason(one(tmp_path, guideline, dose_unit=" ")) == "dose_unit: missing (required; one of g, mg, mL)"


@pytest.mark.parametrize("spelling", ["Privigen", "PRIVIGEN", "  privigen  10% ", "IVIG Privigen"])
def test_product_spellings_match_the_catalog(tmp_path: Path, guideline: Guideline, spelling: str) -> None:
    """Product names and aliases match case-insensitively with whitespace collapsed."""
    assert accepted(one(tmp_path, guideline, product=spelling))["product"] == "Privigen"


def test_unknown_product_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A product not in the catalog is rejected, listing the catalog."""
    assert reason(one(tmp_path, guideline, product="Hizentra")) == (
        "product: 'Hizentra' is not in the product catalog (Privigen, Gammagard S/D, Octagam 10%, Gamunex-C)"
    )


# ------------------------------------------------------------------ weight
@pytest.mark.parametrize(
    ("weight", "unit", "weight_kg"),
    [
        ("1", "kg", 1.0),
        ("400", "kg", 400.0),
        ("70", "KG", 70.0),
        ("100", "lb", 45.359237),
        ("100", "lbs", 45.359237),
        ("2.2046226218487757", "lb", 1.0),
        ("881.8490487395103", "lb", 400.0),
    ],
)
def test_weight_within_limits_is_accepted(
    tmp_path: Path, guideline: Guideline, weight: str, unit: str, weight_kg: float
) -> None:
    """Weights from 1 to 400 kg inclusive are accepted; lb x 0.45359237."""
    assert accepted(one(tmp_path, guideline, weight=weight, weight_unit=unit))["weight_kg"] == pytest.approx(weight_kg)


@pytest.mark.parametrize(
    ("weight", "unit", "expected"),
    [
        ("0.99", "kg", "weight: 0.99 kg is outside 1–400 kg"),
        ("400.01", "kg", "weight: 400.01 kg is outside 1–400 kg"),
        ("500", "kg", "weight: 500 kg is outside 1–400 kg"),
        ("-70", "kg", "weight: -70 kg is outside 1–400 kg"),
        ("2.2", "lb", "weight: 2.2 lb (0.9979 kg) is outside 1–400 kg"),
        ("882", "lb", "weight: 882 lb (400.0685 kg) is outside 1–400 kg"),
    ],
)
def test_weight_outside_limits_is_rejected(
    tmp_path: Path, guideline: Guideline, weight: str, unit: str, expected: str
) -> None:
    """Weights just outside 1–400 kg (after lb conversion) are rejected, showing the kg value."""
    assert reason(one(tmp_path, guideline, weight=weight, weight_unit=unit)) == expected


def test_weight_limits_come_from_the_guideline(tmp_path: Path, guideline: Guideline) -> None:
    """The weight range is the profile's min_weight_kg..max_weight_kg, not a constant."""
    narrow = guideline.with_value("max_weight_kg", 60.0)
    path = write_csv(tmp_path / "i.csv", [infusion()], INFUSION_COLUMNS)
    loaded = load_infusions(path, narrow, now=NOW)
    assert loaded.rejected.item(0, "reason") == "weight: 70 kg is outside 1–60 kg"


def test_bad_weight_unit_and_number_are_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A weight that isn't a number and a unit other than kg/lb are both reported."""
    assert reason(one(tmp_path, guideline, weight="seventy", weight_unit="st")) == (
        "weight: 'seventy' is not a number; weight_unit: 'st' is not one of kg, lb"
    )


# ------------------------------------------------------------------ height
@pytest.mark.parametrize(
    ("height", "unit", "height_cm"),
    [
        ("40", "cm", 40.0),
        ("250", "cm", 250.0),
        ("67", "in", 170.18),
        ("67", "IN", 170.18),
        ("15.748031496062993", "in", 40.0),
        ("98.42519685039369", "in", 250.0),
    ],
)
def test_height_within_limits_is_accepted(
    tmp_path: Path, guideline: Guideline, height: str, unit: str, height_cm: float
) -> None:
    """Heights from 40 to 250 cm inclusive are accepted; in x 2.54."""
    assert accepted(one(tmp_path, guideline, height=height, height_unit=unit))["height_cm"] == pytest.approx(height_cm)


@pytest.mark.parametrize(
    ("height", "unit", "expected"),
    [
        ("39.99", "cm", "height: 39.99 cm is outside 40–250 cm"),
        ("250.01", "cm", "height: 250.01 cm is outside 40–250 cm"),
        ("15.7", "in", "height: 15.7 in (39.878 cm) is outside 40–250 cm"),
        ("98.5", "in", "height: 98.5 in (250.19 cm) is outside 40–250 cm"),
    ],
)
def test_height_outside_limits_is_rejected(
    tmp_path: Path, guideline: Guideline, height: str, unit: str, expected: str
) -> None:
    """Heights just outside 40–250 cm (after in conversion) are rejected."""
    assert reason(one(tmp_path, guideline, height=height, height_unit=unit)) == expected


def test_height_is_optional(tmp_path: Path, guideline: Guideline) -> None:
    """A blank height gives a null height_cm; a unit without a height is ignored, whatever it says."""
    assert accepted(one(tmp_path, guideline, height="", height_unit="cm"))["height_cm"] is None
    assert accepted(one(tmp_path, guideline, height="", height_unit=""))["height_cm"] is None
    assert accepted(one(tmp_path, guideline, height="", height_unit="ft"))["height_cm"] is None
    assert (
        accepted(one(tmp_path, guideline, infusion_rate="", infusion_rate_unit="drops"))["infusion_rate_mg_kg_min"]
        is None
    )


def test_height_without_unit_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A height with a blank unit is rejected: it can't be converted."""
    assert reason(one(tmp_path, guideline, height_unit="")) == (
        "height_unit: missing (required when height is given; one of cm, in)"
    )


def test_height_with_bad_unit_or_number_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A height unit other than cm/in, and a height that isn't a number, are rejected."""
    assert reason(one(tmp_path, guideline, height_unit="ft")) == "height_unit: 'ft' is not one of cm, in"
    assert reason(one(tmp_path, guideline, height="tall")) == "height: 'tall' is not a number"


def test_optional_columns_may_be_absent(tmp_path: Path, guideline: Guideline) -> None:
    """A file with only the required columns loads, optional values null."""
    required = [c for c in INFUSION_COLUMNS if c not in {"height", "height_unit", "sex", "birth_date", "site"}]
    required = [c for c in required if not c.startswith("infusion_rate")]
    path = write_csv(tmp_path / "i.csv", [infusion()], required)
    row = accepted(load_infusions(path, guideline, now=NOW))
    assert (row["height_cm"], row["sex"], row["birth_date"], row["site"], row["infusion_rate_mg_kg_min"]) == (
        None,
        None,
        None,
        None,
        None,
    )


# ------------------------------------------------------------------ sex, dates
@pytest.mark.parametrize(
    ("written", "sex"),
    [("F", "F"), ("f", "F"), ("Female", "F"), ("M", "M"), ("male", "M"), ("MALE", "M"), ("", None), ("U", None)],
)
def test_sex_spellings(tmp_path: Path, guideline: Guideline, written: str, sex: str | None) -> None:
    """F/M/female/male in any case map to F/M; blank and U are unknown (null)."""
    assert accepted(one(tmp_path, guideline, sex=written))["sex"] == sex


def test_unknown_spelled_out_is_null_sex(tmp_path: Path, guideline: Guideline) -> None:
    """'unknown' (any case) is an unknown sex, not an error."""
    assert accepted(one(tmp_path, guideline, sex="Unknown"))["sex"] is None


def test_other_sex_value_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A sex value outside the accepted spellings is rejected."""
    assert reason(one(tmp_path, guideline, sex="X")) == (
        "sex: 'X' is not one of F, M, female, male (blank, U or unknown = unknown)"
    )


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("2025-03-04 09:30", datetime(2025, 3, 4, 9, 30)),
        ("2025-03-04 09:30:15", datetime(2025, 3, 4, 9, 30, 15)),
        ("2025-03-04T09:30", datetime(2025, 3, 4, 9, 30)),
        ("2025-03-04T09:30:15", datetime(2025, 3, 4, 9, 30, 15)),
        ("2025-03-04T09:30:15.250", datetime(2025, 3, 4, 9, 30, 15, 250000)),
        ("2025-03-04 09:30:15.123456789", datetime(2025, 3, 4, 9, 30, 15, 123456)),
        ("2025-03-04", datetime(2025, 3, 4, 0, 0)),
        ("2025-3-4 9:30", datetime(2025, 3, 4, 9, 30)),
        (" 2025-03-04 09:30 ", datetime(2025, 3, 4, 9, 30)),
        ("2025-06-01 12:00", datetime(2025, 6, 1, 12, 0)),
    ],
)
def test_administered_at_formats(tmp_path: Path, guideline: Guideline, written: str, parsed: datetime) -> None:
    """ISO 8601 with space or T, with or without seconds and fractions; a date alone is 00:00; now itself is fine."""
    assert accepted(one(tmp_path, guideline, administered_at=written))["administered_at"] == parsed


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("2025-13-45", "administered_at: '2025-13-45' is not a date-time (expected ISO 8601 like 2025-03-04 09:30)"),
        (
            "2025-02-30 10:00",
            "administered_at: '2025-02-30 10:00' is not a date-time (expected ISO 8601 like 2025-03-04 09:30)",
        ),
        (
            "04/03/2025 09:30",
            "administered_at: '04/03/2025 09:30' is not a date-time (expected ISO 8601 like 2025-03-04 09:30)",
        ),
        (
            "2025-03-04 25:00",
            "administered_at: '2025-03-04 25:00' is not a date-time (expected ISO 8601 like 2025-03-04 09:30)",
        ),
        (
            "2025-03-04T09:30+01:00",
            f"administered_at: '2025-03-04T09:30+01:00' {ZONED}",
        ),
        (
            "2025-03-04T09:30:00Z",
            f"administered_at: '2025-03-04T09:30:00Z' {ZONED}",
        ),
        ("", "administered_at: missing (required)"),
    ],
)
def test_bad_administered_at_is_rejected(tmp_path: Path, guideline: Guideline, written: str, expected: str) -> None:
    """Impossible dates, other formats and time-zone offsets are rejected with the expected format."""
    assert reason(one(tmp_path, guideline, administered_at=written)) == expected


def test_future_administration_is_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """An administration one minute after now is rejected as in the future."""
    assert reason(one(tmp_path, guideline, administered_at="2025-06-01 12:01")) == (
        "administered_at: '2025-06-01 12:01' is in the future (after 2025-06-01 12:00)"
    )


@pytest.mark.parametrize(
    ("written", "parsed"),
    [("1980-01-02", date(1980, 1, 2)), ("1980-01-02 00:00:00", date(1980, 1, 2)), ("", None)],
)
def test_birth_date_formats(tmp_path: Path, guideline: Guideline, written: str, parsed: date | None) -> None:
    """birth_date is optional; a date-time gives its date."""
    assert accepted(one(tmp_path, guideline, birth_date=written))["birth_date"] == parsed


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("02/01/1980", "birth_date: '02/01/1980' is not a date (expected ISO 8601 like 2025-03-04)"),
        (
            "2025-06-02",
            "birth_date: '2025-06-02' is in the future (after 2025-06-01); "
            "birth_date: '2025-06-02' is after administered_at",
        ),
        ("2025-03-05", "birth_date: '2025-03-05' is after administered_at"),
    ],
)
def test_bad_birth_date_is_rejected(tmp_path: Path, guideline: Guideline, written: str, expected: str) -> None:
    """A birth_date that isn't a date, is in the future or is after the administration is rejected."""
    assert reason(one(tmp_path, guideline, birth_date=written)) == expected


def test_birth_date_on_the_administration_day_is_accepted(tmp_path: Path, guideline: Guideline) -> None:
    """A newborn treated on the day of birth is plausible."""
    assert accepted(one(tmp_path, guideline, birth_date="2025-03-04"))["birth_date"] == date(2025, 3, 4)


# ------------------------------------------------------------------ required text, rate
@pytest.mark.parametrize("column", ["admin_id", "patient_id", "indication"])
def test_blank_required_text_is_rejected(tmp_path: Path, guideline: Guideline, column: str) -> None:
    """admin_id, patient_id and indication must not be blank."""
    assert reason(one(tmp_path, guideline, **{column: "  "})) == f"{column}: missing (required)"


def test_text_is_trimmed_and_scope_is_not_decided_here(tmp_path: Path, guideline: Guideline) -> None:
    """Ids are trimmed; an out-of-scope indication is kept for the engine to count."""
    row = accepted(one(tmp_path, guideline, admin_id=" A9 ", patient_id=" P9", indication="D69.3 ITP"))
    assert (row["admin_id"], row["patient_id"], row["indication"]) == ("A9", "P9", "D69.3 ITP")


@pytest.mark.parametrize(
    ("rate", "unit", "mg_kg_min"),
    [
        ("100", "mL/h", 100 * 0.1 * 1000 / 70 / 60),
        ("100", "ml/h", 100 * 0.1 * 1000 / 70 / 60),
        ("2.5", "mg/kg/min", 2.5),
        ("", "", None),
    ],
)
def test_infusion_rate_converts_to_mg_per_kg_per_min(
    tmp_path: Path, guideline: Guideline, rate: str, unit: str, mg_kg_min: float | None
) -> None:
    """mL/h x concentration x 1000 / weight_kg / 60; mg/kg/min as is; blank is null."""
    got = accepted(one(tmp_path, guideline, infusion_rate=rate, infusion_rate_unit=unit))["infusion_rate_mg_kg_min"]
    assert got == (pytest.approx(mg_kg_min) if mg_kg_min is not None else None)


def test_infusion_rate_uses_converted_weight_and_product(tmp_path: Path, guideline: Guideline) -> None:
    """The mL/h conversion uses the row's product concentration and weight in kg."""
    row = accepted(
        one(
            tmp_path,
            guideline,
            product="Gammagard S/D",
            weight="154",
            weight_unit="lb",
            infusion_rate="60",
            infusion_rate_unit="mL/h",
        )
    )
    assert row["infusion_rate_mg_kg_min"] == pytest.approx(60 * 0.05 * 1000 / (154 * 0.45359237) / 60)


@pytest.mark.parametrize(
    ("rate", "unit", "expected"),
    [
        ("100", "", "infusion_rate_unit: missing (required when infusion_rate is given; one of mL/h, mg/kg/min)"),
        ("100", "drops/min", "infusion_rate_unit: 'drops/min' is not one of mL/h, mg/kg/min"),
        ("fast", "mL/h", "infusion_rate: 'fast' is not a number"),
        ("0", "mL/h", "infusion_rate: '0' is not a positive number"),
    ],
)
def test_bad_infusion_rate_is_rejected(
    tmp_path: Path, guideline: Guideline, rate: str, unit: str, expected: str
) -> None:
    """A rate needs a number > 0 and a unit of mL/h or mg/kg/min."""
    assert reason(one(tmp_path, guideline, infusion_rate=rate, infusion_rate_unit=unit)) == expected


def test_every_problem_of_a_row_is_listed(tmp_path: Path, guideline: Guideline) -> None:
    """A row with several problems lists all of them, in column order, joined with '; '."""
    text = reason(one(tmp_path, guideline, patient_id="", product="Hizentra", dose="-5", weight="500"))
    assert text.split("; ") == [
        "patient_id: missing (required)",
        "product: 'Hizentra' is not in the product catalog (Privigen, Gammagard S/D, Octagam 10%, Gamunex-C)",
        "dose: '-5' is not a positive number",
        "weight: 500 kg is outside 1–400 kg",
    ]


# ------------------------------------------------------------------ duplicates and admin_id
def test_exact_duplicates_are_counted_once(tmp_path: Path, guideline: Guideline) -> None:
    """Identical rows keep the first copy (lowest line) and count the others as duplicates."""
    loaded = load(tmp_path, guideline, infusion(), infusion(admin_id="A2"), infusion(), infusion())
    assert loaded.frame.get_column("source_row").to_list() == [2, 3]
    assert (loaded.rows_read, loaded.rows_duplicate, loaded.rows_rejected) == (4, 2, 0)


def test_admin_id_with_different_content_rejects_all_its_rows(tmp_path: Path, guideline: Guideline) -> None:
    """An admin_id on rows that differ rejects every one of them, naming the lines."""
    loaded = load(
        tmp_path,
        guideline,
        infusion(admin_id="A5", dose="35"),
        infusion(admin_id="A6"),
        infusion(admin_id="A5", dose="40"),
        infusion(admin_id="A5", dose="35"),
    )
    assert loaded.frame.get_column("admin_id").to_list() == ["A6"]
    assert loaded.rejected.select("source_row", "reason").rows() == [
        (2, "admin_id: 'A5' is repeated with different content (lines 2, 4)"),
        (4, "admin_id: 'A5' is repeated with different content (lines 2, 4)"),
    ]
    assert (loaded.rows_read, loaded.rows_duplicate, loaded.rows_rejected) == (4, 1, 2)


def test_conflicting_row_also_lists_its_own_problems(tmp_path: Path, guideline: Guideline) -> None:
    """A row rejected for its admin_id still reports its other problems after the admin_id reason."""
    loaded = load(tmp_path, guideline, infusion(admin_id="A5"), infusion(admin_id="A5", dose="-1"))
    assert loaded.rejected.get_column("reason").to_list() == [
        "admin_id: 'A5' is repeated with different content (lines 2, 3)",
        "admin_id: 'A5' is repeated with different content (lines 2, 3); dose: '-1' is not a positive number",
    ]


def test_long_admin_id_conflicts_list_ten_lines(tmp_path: Path, guideline: Guideline) -> None:
    """At most ten lines are listed, then how many more."""
    rows = [infusion(admin_id="A5", dose=str(10 + i)) for i in range(12)]
    loaded = load(tmp_path, guideline, *rows)
    assert loaded.rejected.item(0, "reason") == (
        "admin_id: 'A5' is repeated with different content (lines 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 and 2 more)"
    )


def test_duplicates_differing_only_in_extra_columns_are_not_duplicates(tmp_path: Path, guideline: Guideline) -> None:
    """All original columns, extra ones too, must be equal for an exact duplicate."""
    columns = [*INFUSION_COLUMNS, "comment"]
    path = write_csv(tmp_path / "i.csv", [infusion(comment="x"), infusion(comment="y")], columns)
    loaded = load_infusions(path, guideline, now=NOW)
    assert (loaded.rows_duplicate, loaded.rows_rejected) == (0, 2)
    assert loaded.rejected.columns[-1] == "comment"


# ------------------------------------------------------------------ structure
def test_missing_required_columns_is_an_input_error(tmp_path: Path, guideline: Guideline) -> None:
    """A file without required columns can't be used: one message naming the file and every missing column."""
    columns = [c for c in INFUSION_COLUMNS if c not in {"dose_unit", "weight"}]
    path = write_csv(tmp_path / "infusions.csv", [infusion(patient_id="MRN-SECRET-1")], columns)
    with pytest.raises(InputError) as caught:
        load_infusions(path, guideline, now=NOW)
    assert str(caught.value) == f"{path}: missing required columns: dose_unit, weight"
    assert caught.value.file == str(path)
    assert caught.value.problem == "missing required columns: dose_unit, weight"
    assert "MRN-SECRET-1" not in str(caught.value)


def test_header_only_file_gives_empty_frames(tmp_path: Path, guideline: Guideline) -> None:
    """A file with a header and no rows loads as zero rows with the right schemas."""
    path = tmp_path / "i.csv"
    path.write_text(",".join(INFUSION_COLUMNS) + "\n", encoding="utf-8")
    loaded = load_infusions(path, guideline, now=NOW)
    assert dict(loaded.frame.schema) == INFUSIONS
    assert loaded.frame.height == loaded.rejected.height == loaded.rows_read == 0
    assert loaded.rejected.columns == [*REJECTED_KEYS, *INFUSION_COLUMNS]


def test_line_numbers_count_blank_lines_and_multiline_cells(tmp_path: Path, guideline: Guideline) -> None:
    """source_row is the line the user sees, past blank lines and quoted line breaks."""
    header = ",".join(INFUSION_COLUMNS)
    good = ",".join(infusion().values())
    bad = ",".join(infusion(admin_id="A2", dose="-1").values())
    multiline = good.replace("North", '"North\nwing"').replace("A1", "A3")
    path = tmp_path / "i.csv"
    path.write_text(f"{header}\n{good}\n\n{multiline}\n{bad}\n", encoding="utf-8")
    loaded = load_infusions(path, guideline, now=NOW)
    assert loaded.frame.get_column("source_row").to_list() == [2, 4]
    assert loaded.frame.get_column("site").to_list() == ["North", "North\nwing"]
    assert loaded.rejected.get_column("source_row").to_list() == [6]
    assert loaded.rows_read == 3


def test_mapping_renames_export_columns(tmp_path: Path, guideline: Guideline) -> None:
    """A site's own column names are mapped to canonical ones, case-insensitively."""
    renamed = {"admin_id": "Record ID", "patient_id": "MRN", "administered_at": "Start Time", "dose": "Dose (amount)"}
    row = {renamed.get(k, k): v for k, v in infusion().items()}
    path = write_csv(tmp_path / "i.csv", [row])
    mapping = {"record id": "admin_id", "mrn": "patient_id", "START TIME": "administered_at", "Dose (amount)": "dose"}
    loaded = load_infusions(path, guideline, mapping=mapping, now=NOW)
    assert accepted(loaded)["patient_id"] == "P1"


def test_aware_now_is_taken_as_local_time(tmp_path: Path, guideline: Guideline) -> None:
    """A time-zone-aware clock is converted to naive local time before comparing."""
    aware = NOW.astimezone()
    assert accepted(load_infusions(write_csv(tmp_path / "i.csv", [infusion()]), guideline, now=aware))
