"""The synthetic export generator: deterministic, contract-shaped, realistic, and in sync with the committed sample."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import re
import tomllib
from collections import defaultdict
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from sample_data.generate import (
    AS_OF_DEFAULT,
    EXTRA_ROW_KINDS,
    PROBLEMS,
    expected_outcome,
    generate,
    main,
    patients_for_rows,
    site_b_frames,
    write_sample,
    write_site_b,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
CATALOG = REPO / "audit" / "guidelines" / "mayo-2013.toml"

# The committed sample is made with these settings (sample_data/README.md).
SAMPLE_PATIENTS, SAMPLE_SEED = 300, 42
SITE_B_PATIENTS, SITE_B_SEED = 80, 7

# shared/spec/CONTRACT.md, "Inputs": the canonical column names.
CONTRACT_INFUSION_COLUMNS = [
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
]
CONTRACT_LAB_COLUMNS = ["patient_id", "collected_at", "test", "value", "unit"]
CONTRACT_REVIEW_COLUMNS = ["patient_id", "reviewed_on", "note"]


def _parse_at(text: str | None) -> dt.datetime | None:
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text or "", fmt)
        except ValueError:
            pass
    return None


def _catalog() -> dict[str, dict[str, Any]]:
    """Product name or alias (lower case) -> product entry of the guideline's catalog."""
    config = tomllib.loads(CATALOG.read_text(encoding="utf-8"))
    return {name.lower(): p for p in config["products"] for name in [p["name"], *p["aliases"]]}


@pytest.fixture(scope="module")
def small() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A messy 400-patient world."""
    return generate(400, seed=3)


@pytest.fixture(scope="module")
def small_clean() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The same world without the deliberate problems."""
    return generate(400, seed=3, messy=False)


def test_same_seed_gives_identical_frames() -> None:
    """Two runs with the same size and seed give identical infusions, labs and reviews."""
    first, second = generate(120, seed=9), generate(120, seed=9)
    for a, b in zip(first, second, strict=True):
        assert a.equals(b)


def test_different_seed_gives_different_frames() -> None:
    """Another seed gives other data (patients, dates and doses)."""
    a, _, _ = generate(120, seed=9)
    b, _, _ = generate(120, seed=10)
    assert not a.equals(b)
    assert set(a["patient_id"]) != set(b["patient_id"])


def test_columns_are_the_contracts_canonical_names_all_text(
    small: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """Infusions, labs and reviews have exactly the contract's canonical columns, all strings."""
    infusions, labs, reviews = small
    assert infusions.columns == CONTRACT_INFUSION_COLUMNS
    assert labs.columns == CONTRACT_LAB_COLUMNS
    assert reviews.columns == CONTRACT_REVIEW_COLUMNS
    for frame in small:
        assert all(dtype == pl.String for dtype in frame.dtypes)


def test_identifiers_are_pseudonyms(small: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]) -> None:
    """Patients are P + 6 digits and administrations A + 7 digits: never anything like a real MRN."""
    infusions, labs, reviews = small
    for frame in (infusions, labs, reviews):
        assert frame["patient_id"].str.contains(r"^P\d{6}$").all()
    assert infusions["admin_id"].str.contains(r"^A\d{7}$").all()


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cells(path: Path) -> list[tuple[str, list[tuple[Any, ...]]]]:
    """Every sheet's cell values and number formats, in order."""
    wb = openpyxl.load_workbook(path)
    return [
        (ws.title, [tuple((c.value, c.number_format) for c in row) for row in ws.iter_rows()]) for ws in wb.worksheets
    ]


def test_committed_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    """sample_data/*.csv and the expectations are byte for byte what the generator writes now."""
    paths = write_sample(tmp_path, SAMPLE_PATIENTS, SAMPLE_SEED, "csv", with_expected=True)
    for path in paths.values():
        committed = SAMPLE / path.name
        # digests, not bytes: pytest's diff of two large byte strings takes minutes
        assert _digest(committed) == _digest(path), f"{committed} is stale: regenerate it (README)"


def test_committed_site_b_is_what_the_generator_writes(tmp_path: Path) -> None:
    """sample_data/site_b (XLSX, mapping, Parquet labs) is what the generator writes now."""
    paths = write_site_b(tmp_path, SITE_B_PATIENTS, SITE_B_SEED)
    committed = SAMPLE / "site_b"
    assert _digest(committed / "mapping.csv") == _digest(paths["mapping"])
    assert pl.read_parquet(committed / "labs.parquet").equals(pl.read_parquet(paths["labs"]))
    # content, not bytes: openpyxl's bytes differ with and without lxml installed
    assert _cells(committed / "infusions.xlsx") == _cells(paths["infusions"])


def test_committed_files_stay_small() -> None:
    """Every committed sample file is under 1 MB."""
    files = [p for p in SAMPLE.rglob("*") if p.is_file() and p.suffix in {".csv", ".xlsx", ".parquet", ".json"}]
    assert files
    for path in files:
        assert path.stat().st_size < 1_000_000, path


def test_site_b_uses_its_own_names_and_real_excel_datetimes() -> None:
    """Site B's XLSX has its own headers (all mapped but one extra), Excel date-time cells and text MRNs."""
    infusions, mapping, _ = site_b_frames(SITE_B_PATIENTS, SITE_B_SEED)
    assert set(mapping["canonical"]) == set(CONTRACT_INFUSION_COLUMNS)
    assert set(infusions.columns) - set(mapping["source"]) == {"Lot #"}
    sheet = openpyxl.load_workbook(SAMPLE / "site_b" / "infusions.xlsx").active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    when = header.index("Admin Date/Time")
    mrn = header.index("MRN")
    values = list(sheet.iter_rows(min_row=2, values_only=True))
    assert sum(isinstance(row[when], dt.datetime) for row in values) >= len(values) - 3
    assert all(isinstance(row[mrn], str) and row[mrn].startswith("00") for row in values)
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)


def test_rows_option_gives_about_the_asked_count(tmp_path: Path) -> None:
    """--rows N picks a patient count that gives N infusion rows within 10 %."""
    assert main(["--rows", "20000", "--seed", "5", "--out", str(tmp_path)]) == 0
    n_rows = pl.read_csv(tmp_path / "infusions.csv", infer_schema=False).height
    assert abs(n_rows - 20000) / 20000 < 0.10
    assert abs(patients_for_rows(20000, seed=5) * 17 - 20000) / 20000 < 0.5  # about 17 rows a patient


def test_clean_world_has_no_deliberate_problems(
    small_clean: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """messy=False: every row is usable under the contract and no text could be read as a formula."""
    infusions, labs, reviews = small_clean
    catalog = _catalog()
    now = dt.datetime.combine(AS_OF_DEFAULT, dt.time())
    assert infusions["admin_id"].n_unique() == infusions.height
    assert infusions.unique().height == infusions.height
    for row in infusions.iter_rows(named=True):
        at = _parse_at(row["administered_at"])
        assert at is not None, row
        assert at < now, row
        assert row["product"].lower() in catalog, row
        assert row["dose_unit"] in {"g", "mg", "mL"}, row
        assert float(row["dose"]) > 0, row
        kg = float(row["weight"]) * (0.45359237 if row["weight_unit"] == "lb" else 1.0)
        assert row["weight_unit"] in {"kg", "lb"}, row
        assert 1 <= kg <= 400, row
        if row["height"] is not None:
            cm = float(row["height"]) * (2.54 if row["height_unit"] == "in" else 1.0)
            assert row["height_unit"] in {"cm", "in"}, row
            assert 40 <= cm <= 250, row
    for row in labs.iter_rows(named=True):
        assert _parse_at(row["collected_at"]) is not None, row
        assert row["unit"] in {"mg/dL", "g/L", "mg/L"}, row
        assert re.fullmatch(r"[<>]?\d+(\.\d+)?", row["value"]), row
    for row in reviews.iter_rows(named=True):
        dt.date.fromisoformat(row["reviewed_on"])
    for frame in (infusions, labs, reviews):
        for column in frame.columns:
            text = frame[column].drop_nulls()
            assert not text.str.contains(r"^[=+\-@]").any(), column
            assert not text.str.contains(r"[\x00-\x1f]").any(), column


def test_messy_world_is_the_clean_world_plus_the_listed_problems(
    small: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    small_clean: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """messy=True keeps every clean row (site aside) and adds exactly the counted bad rows."""
    messy, clean = small[0], small_clean[0]
    summary, _ = expected_outcome(400, seed=3)
    problems = summary["deliberate_problems"]
    assert messy.height == clean.height + sum(problems[k] for k in EXTRA_ROW_KINDS)
    assert set(clean["admin_id"]) <= set(messy["admin_id"])
    assert (messy["product"] == "Hizentra").sum() == problems["unknown_product"]
    assert (messy["dose_unit"] == "units").sum() == problems["unknown_dose_unit"]
    assert (messy["dose"] == "0").sum() == problems["dose_zero"]
    assert messy["dose"].str.starts_with("-").sum() == problems["dose_negative"]
    assert (messy["weight"] == "500").sum() == problems["weight_500kg"]
    assert (messy["height"] == "20").sum() == problems["height_20cm"]
    assert messy.height - messy.unique().height == problems["exact_duplicate"]
    assert messy["site"].str.starts_with("=").sum() == problems["formula_site"]
    assert messy["site"].str.contains("\x07").sum() == problems["control_char_site"]
    assert all(problems[kind] >= 1 for kind, _, _ in PROBLEMS)


def test_committed_counts_in_readme_match_expected_json() -> None:
    """The README's problem table and row counts are the numbers in sample_data/expected.json."""
    readme = (SAMPLE / "README.md").read_text(encoding="utf-8")
    expected = json.loads((SAMPLE / "expected.json").read_text(encoding="utf-8"))
    for kind, count in expected["deliberate_problems"].items():
        assert re.search(rf"^\| `{kind}` \|.*\| {count} \|$", readme, re.MULTILINE), kind
    for code, count in expected["exceptions_by_rule"].items():
        assert re.search(rf"^\| `{code}` \|.*\| {count} \|$", readme, re.MULTILINE), code
    for name, count in expected["reconciliation"].items():
        if name != "note":
            assert re.search(rf"^\| `{name}` \| {count} \|", readme, re.MULTILINE), name


def test_every_guideline_rule_is_exercised() -> None:
    """The committed sample's expectations include every rule of the mayo-2013 profile at least once."""
    expected = json.loads((SAMPLE / "expected.json").read_text(encoding="utf-8"))
    rules = tomllib.loads(CATALOG.read_text(encoding="utf-8"))["rules"]
    assert set(expected["exceptions_by_rule"]) == set(rules)
    assert all(count >= 1 for count in expected["exceptions_by_rule"].values())
    share = expected["cycles_with_exception"] / expected["cycles_audited"]
    assert 0.2 <= share <= 0.4


# ------------------------------------------------ a plain reading of GUIDELINE.md
# Deliberately simple Python over the exported text, written apart from the
# generator, to check expected_outcome(). Rows are (patient, at, grams, product,
# weight_kg, height_cm, sex, birth_date).
Admin = tuple[str, dt.datetime, float, dict[str, Any], float, float | None, str | None, dt.date | None]
Exception_ = tuple[str, str, str, int, str]


def _parameters() -> dict[str, Any]:
    config = tomllib.loads(CATALOG.read_text(encoding="utf-8"))
    return {k: v["value"] for k, v in config["parameters"].items()}


def _usable_admins(infusions: pl.DataFrame, par: dict[str, Any]) -> list[Admin]:
    """In-scope rows that pass the contract's checks, duplicates counted once."""
    catalog = _catalog()
    now = dt.datetime.combine(AS_OF_DEFAULT, dt.time()) + dt.timedelta(days=30)
    rows = infusions.unique(maintain_order=True).to_dicts()
    contents: dict[str, set[tuple[Any, ...]]] = defaultdict(set)
    for r in rows:
        contents[r["admin_id"]].add(tuple(r.values()))
    usable: list[Admin] = []
    for r in rows:
        at = _parse_at(r["administered_at"])
        product = catalog.get((r["product"] or "").lower())
        number = re.compile(r"-?\d+(\.\d+)?")
        if at is None or at > now or product is None or len(contents[r["admin_id"]]) > 1:
            continue
        if not (number.fullmatch(r["dose"]) and number.fullmatch(r["weight"])) or float(r["dose"]) <= 0:
            continue
        if r["dose_unit"] not in ("g", "mg", "mL"):
            continue
        kg = float(r["weight"]) * (0.45359237 if r["weight_unit"] == "lb" else 1.0)
        cm = float(r["height"]) * (2.54 if r["height_unit"] == "in" else 1.0) if r["height"] else None
        if not par["min_weight_kg"] <= kg <= par["max_weight_kg"]:
            continue
        if cm is not None and not par["min_height_cm"] <= cm <= par["max_height_cm"]:
            continue
        if not (re.match(r"^M33\.?[019]", r["indication"]) or "dermatomyositis" in r["indication"].lower()):
            continue
        dose = float(r["dose"])
        grams = {"g": dose, "mg": dose / 1000}.get(r["dose_unit"], dose * product["concentration_g_per_ml"])
        sex = {"f": "F", "female": "F", "m": "M", "male": "M"}.get((r["sex"] or "").lower())
        birth = dt.date.fromisoformat(r["birth_date"]) if r["birth_date"] else None
        usable.append((r["patient_id"], at, grams, product, kg, cm, sex, birth))
    return usable


def _iga_results(labs: pl.DataFrame, par: dict[str, Any]) -> dict[str, list[tuple[dt.datetime, bool]]]:
    """patient -> [(collected_at, is_deficient)] for the usable IgA rows."""
    results: dict[str, list[tuple[dt.datetime, bool]]] = defaultdict(list)
    for lab in labs.to_dicts():
        at = _parse_at(lab["collected_at"])
        factor = {"mg/dL": 1.0, "g/L": 100.0, "mg/L": 0.1}.get(lab["unit"])
        match = re.fullmatch(r"([<>]?)(\d+(?:\.\d+)?)", lab["value"] or "")
        if lab["test"].lower() not in ("iga", "2458-8") or at is None or factor is None or match is None:
            continue
        deficient = match[1] == "<" or (match[1] == "" and float(match[2]) * factor < par["iga_deficiency_mg_dl"])
        results[lab["patient_id"]].append((at, deficient))
    return results


def _review_dates(reviews: pl.DataFrame) -> dict[str, list[dt.date]]:
    dates: dict[str, list[dt.date]] = defaultdict(list)
    for review in reviews.to_dicts():
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", review["reviewed_on"]):
            with contextlib.suppress(ValueError):
                dates[review["patient_id"]].append(dt.date.fromisoformat(review["reviewed_on"]))
    return dates


def _courses(days: dict[dt.date, list[Admin]], par: dict[str, Any]) -> list[list[list[dt.date]]]:
    """Infusion days -> cycles (gap <= 3 days) -> courses (start gap <= 90 days)."""
    cycles: list[list[dt.date]] = []
    for day in sorted(days):
        if cycles and (day - cycles[-1][-1]).days <= par["cycle_gap_max_days"]:
            cycles[-1].append(day)
        else:
            cycles.append([day])
    courses: list[list[list[dt.date]]] = []
    for cycle in cycles:
        if courses and (cycle[0] - courses[-1][-1][0]).days <= par["course_gap_max_days"]:
            courses[-1].append(cycle)
        else:
            courses.append([cycle])
    return courses


def _dosing_weight(first: Admin, start: dt.date, par: dict[str, Any]) -> float | None:
    _, _, _, _, kg, cm, sex, birth = first
    minor = birth is not None and (start.year - birth.year - ((start.month, start.day) < (birth.month, birth.day))) < 18
    ibw = None
    if sex and cm:
        base = par["ibw_base_male_kg"] if sex == "M" else par["ibw_base_female_kg"]
        ibw = base + par["ibw_kg_per_inch"] * (cm / 2.54 - par["ibw_base_height_in"])
    if minor or (cm is not None and cm < par["short_height_cm"]) or (ibw is not None and kg < ibw):
        return kg
    return ibw


def _dose_rules(daily: list[float], days: int, weight: float | None, par: dict[str, Any]) -> list[str]:
    tol = par["dose_tolerance_fraction"]
    hits = []
    if weight is None:
        hits.append("DOSING_WEIGHT_UNKNOWN")
    else:
        if sum(daily) / weight > par["max_g_per_kg"] * (1 + tol):
            hits.append("DOSE_ABOVE_MAX")
        if sum(daily) / weight < par["min_g_per_kg"] * (1 - tol):
            hits.append("DOSE_BELOW_MIN")
        if max(daily) / weight > par["max_daily_g_per_kg"] * (1 + tol):
            hits.append("DAILY_DOSE_ABOVE_MAX")
    if sum(daily) > par["large_dose_g"] and days < par["large_dose_min_days"]:
        hits.append("LARGE_DOSE_NOT_SPREAD")
    if days > par["max_infusion_days"]:
        hits.append("TOO_MANY_INFUSION_DAYS")
    return hits


def _plain_audit(infusions: pl.DataFrame, labs: pl.DataFrame, reviews: pl.DataFrame) -> set[Exception_]:
    """(rule, patient, course id, cycle number, cycle start) for every exception GUIDELINE.md defines."""
    par = _parameters()
    iga, reviewed = _iga_results(labs, par), _review_dates(reviews)
    by_patient: dict[str, dict[dt.date, list[Admin]]] = defaultdict(lambda: defaultdict(list))
    for admin in sorted(_usable_admins(infusions, par), key=lambda a: a[1]):
        by_patient[admin[0]][admin[1].date()].append(admin)
    found: set[Exception_] = set()
    for pid, days in by_patient.items():
        for course_no, course in enumerate(_courses(days, par), 1):
            for number, cycle in enumerate(course, 1):
                start, first = cycle[0], days[cycle[0]][0]
                daily = [sum(a[2] for a in days[d]) for d in cycle]
                hits = _dose_rules(daily, len(cycle), _dosing_weight(first, start, par), par)
                if any((b - a).days > par["max_gap_within_cycle_days"] for a, b in itertools.pairwise(cycle)):
                    hits.append("DAYS_NOT_CONSECUTIVE")
                before = sorted(r for r in iga[pid] if r[0] <= first[1])
                if number == 1 and not before:
                    hits.append("IGA_NOT_SCREENED")
                if before and before[-1][1] and any(not a[3]["is_iga_reduced"] for d in cycle for a in days[d]):
                    hits.append("IGA_DEFICIENT_STANDARD_PRODUCT")
                interval = (start - course[number - 2][0]).days if number >= 2 else None
                if interval is not None and interval < par["min_interval_days"]:
                    hits.append("CYCLE_INTERVAL_SHORT")
                if interval is not None and interval > par["max_interval_days"]:
                    hits.append("CYCLE_INTERVAL_LONG")
                if number == par["max_cycles_without_review"] + 1:
                    low = course[par["review_window_start_cycle"] - 1][0]
                    if not any(low <= r <= start for r in reviewed[pid]):
                        hits.append("COURSE_BEYOND_6_CYCLES_NO_REVIEW")
                found |= {(rule, pid, f"{pid}-C{course_no}", number, start.isoformat()) for rule in hits}
    return found


def test_expected_exceptions_match_a_plain_reading_of_the_text(
    small: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """expected_outcome agrees exactly with a plain-Python reading of GUIDELINE.md over the exported text."""
    _, exceptions = expected_outcome(400, seed=3)
    expected = {
        (r["rule_code"], r["patient_id"], r["course_id"], r["cycle_number"], r["cycle_start"])
        for r in exceptions.to_dicts()
    }
    assert _plain_audit(*small) == expected
    assert {rule for rule, *_ in expected} >= {"DOSE_ABOVE_MAX", "LARGE_DOSE_NOT_SPREAD", "IGA_NOT_SCREENED"}


def test_xlsx_and_parquet_formats_round_trip(tmp_path: Path) -> None:
    """--format xlsx writes text as text (no formulas) and real date-times; parquet keeps the frames."""
    infusions, labs, _ = generate(40, seed=2)
    paths = write_sample(tmp_path / "x", 40, 2, "xlsx")
    sheet = openpyxl.load_workbook(paths["infusions"]).active
    assert sheet is not None
    assert all(c.data_type != "f" for row in sheet.iter_rows() for c in row)
    header = [c.value for c in sheet[1]]
    assert header == CONTRACT_INFUSION_COLUMNS
    at = header.index("administered_at")
    assert isinstance(sheet.cell(row=2, column=at + 1).value, dt.datetime)
    paths = write_sample(tmp_path / "p", 40, 2, "parquet")
    assert pl.read_parquet(paths["infusions"]).equals(infusions)
    assert pl.read_parquet(paths["labs"]).equals(labs)
