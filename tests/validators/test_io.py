"""read_table and read_mapping: formats, line numbers, header names, and the file-level errors."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

import openpyxl
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.guideline import Guideline
from tests.validators.conftest import INFUSION_COLUMNS, NOW, infusion, write_csv
from validators.errors import InputError
from validators.infusions import load_infusions
from validators.io import _blank_columns, _count_lines, read_mapping, read_table


def test_input_error_is_one_line_with_file_and_problem() -> None:
    """str(InputError) is '<file>: <problem>' and keeps both parts as attributes."""
    error = InputError("labs.csv", "file not found")
    assert (str(error), error.file, error.problem) == ("labs.csv: file not found", "labs.csv", "file not found")


# ------------------------------------------------------------------ CSV
def test_csv_values_are_kept_as_written(tmp_path: Path) -> None:
    """Every column is text as written (spaces kept), headers trimmed, blank cells null, keys added."""
    path = tmp_path / "t.csv"
    path.write_text(" admin_id , Dose ,note\n A1 , 1.50 ,   \n", encoding="utf-8")
    table = read_table(path)
    assert table.columns == ["source_file", "source_row", "admin_id", "dose", "note"]
    assert table.row(0) == (str(path), 2, " A1 ", " 1.50 ", None)
    assert all(dtype == pl.String for name, dtype in table.schema.items() if name != "source_row")
    assert table.schema["source_row"] == pl.Int64


def test_csv_with_bom_semicolons_and_crlf(tmp_path: Path) -> None:
    """A UTF-8 BOM, ';' separators and CRLF line ends (Excel's European CSV) are read."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"\xef\xbb\xbfpatient_id;value\r\nP1;1,5\r\nP2;7\r\n")
    table = read_table(path)
    assert table.select("patient_id", "value").rows() == [("P1", "1,5"), ("P2", "7")]
    assert table.get_column("source_row").to_list() == [2, 3]


def test_csv_in_windows_1252_is_read(tmp_path: Path) -> None:
    """A CSV that isn't UTF-8 is read as Windows-1252 (Excel's default export)."""
    path = tmp_path / "t.csv"
    path.write_bytes("site,note\nHôpital Nord,ok\n".encode("cp1252"))
    assert read_table(path).item(0, "site") == "Hôpital Nord"


def test_tsv_is_tab_separated(tmp_path: Path) -> None:
    """A .tsv file is split on tabs."""
    path = tmp_path / "t.tsv"
    path.write_text("patient_id\tnote\nP1\ta, b\n", encoding="utf-8")
    assert read_table(path).select("patient_id", "note").row(0) == ("P1", "a, b")


def test_leading_blank_lines_move_the_header(tmp_path: Path) -> None:
    """Blank lines before the header are skipped and counted in line numbers."""
    path = tmp_path / "t.csv"
    path.write_text("\n\npatient_id,note\nP1,x\n", encoding="utf-8")
    assert read_table(path).get_column("source_row").to_list() == [4]


def test_duplicate_extra_columns_are_numbered(tmp_path: Path) -> None:
    """Two non-canonical columns with one name are both kept, the second numbered."""
    path = tmp_path / "t.csv"
    path.write_text("patient_id,comment,comment\nP1,a,b\n", encoding="utf-8")
    assert read_table(path).columns[2:] == ["patient_id", "comment", "comment (2)"]


def test_two_columns_for_one_canonical_name_is_an_input_error(tmp_path: Path) -> None:
    """A canonical column given twice (e.g. by the mapping) makes the file unusable."""
    path = tmp_path / "t.csv"
    path.write_text("MRN,patient_id\nP1,P1\n", encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_table(path, {"MRN": "patient_id"})
    assert str(caught.value) == f"{path}: several columns map to the same name: patient_id"


def test_reserved_column_names_are_renamed(tmp_path: Path) -> None:
    """An input column called reason or source_row doesn't clash with the rejected-rows keys."""
    path = tmp_path / "t.csv"
    path.write_text("patient_id,reason,source_row\nP1,x,y\n", encoding="utf-8")
    assert read_table(path).columns[2:] == ["patient_id", "reason (input)", "source_row (input)"]


def test_canonical_names_match_loosely(tmp_path: Path) -> None:
    """Headers like 'Patient ID' and 'BIRTH_DATE' are taken as the canonical names."""
    path = tmp_path / "t.csv"
    path.write_text("Patient ID,BIRTH_DATE, Reviewed On \nP1,1980-01-01,2025-01-01\n", encoding="utf-8")
    assert read_table(path).columns[2:] == ["patient_id", "birth_date", "reviewed_on"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "the file is empty (no header row)"),
        (b"\n\n", "the file is empty (no header row)"),
        (b"a,b\n1,2,3\n", "can't be read as CSV: a line has more fields than the header"),
        (b'a,b\n"1,2\n', "can't be read as CSV (malformed quoting or line structure)"),
    ],
)
def test_unreadable_csv_is_an_input_error(tmp_path: Path, content: bytes, problem: str) -> None:
    """Empty or malformed CSVs raise InputError without quoting the file's contents."""
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(InputError) as caught:
        read_table(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_missing_file_and_unknown_type_are_input_errors(tmp_path: Path) -> None:
    """A missing file and an unsupported extension raise InputError naming the file."""
    with pytest.raises(InputError, match=r"nope\.csv: file not found$"):
        read_table(tmp_path / "nope.csv")
    (tmp_path / "t.json").write_text("{}", encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.json: unsupported file type '\.json'"):
        read_table(tmp_path / "t.json")


# ------------------------------------------------------------------ Excel
def _workbook(path: Path, rows: Sequence[Sequence[object]], *, start_row: int = 1) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for offset, values in enumerate(rows):
        for column, value in enumerate(values, start=1):
            sheet.cell(row=start_row + offset, column=column, value=value)
    book.save(path)
    return path


def test_excel_date_cells_become_iso_text(tmp_path: Path) -> None:
    """Real date-time and date cells become 'YYYY-MM-DD HH:MM:SS' and 'YYYY-MM-DD'; numbers become plain text."""
    path = _workbook(
        tmp_path / "t.xlsx",
        [
            ["administered_at", "birth_date", "dose", "patient_id"],
            [datetime(2025, 3, 4, 9, 30), date(1980, 1, 2), 35, 1234],
            ["2025-03-05 10:00", "1980-01-02", 35.5, "P2"],
        ],
    )
    table = read_table(path)
    assert table.select("source_row", "administered_at", "birth_date", "dose", "patient_id").rows() == [
        (2, "2025-03-04 09:30:00", "1980-01-02", "35", "1234"),
        (3, "2025-03-05 10:00", "1980-01-02", "35.5", "P2"),
    ]


def test_excel_line_numbers_are_sheet_rows(tmp_path: Path) -> None:
    """source_row is the Excel row number, past empty rows and a table that starts lower down."""
    path = _workbook(tmp_path / "t.xlsx", [["patient_id", "note"], ["P1", "a"], [None, None], ["P2", "b"]], start_row=3)
    assert read_table(path).select("source_row", "patient_id").rows() == [(4, "P1"), (6, "P2")]


def test_excel_infusions_load_end_to_end(tmp_path: Path, guideline: Guideline) -> None:
    """An XLSX export with date cells and numbers loads into typed infusions."""
    header = list(INFUSION_COLUMNS)
    row: list[object] = list(infusion().values())
    row[header.index("administered_at")] = datetime(2025, 3, 4, 9, 30)
    row[header.index("birth_date")] = date(1980, 1, 2)
    row[header.index("dose")] = 35
    row[header.index("weight")] = 70.5
    path = _workbook(tmp_path / "infusions.xlsx", [header, [v if v != "" else None for v in row]])
    loaded = load_infusions(path, guideline, now=NOW)
    assert loaded.rows_rejected == 0
    assert loaded.frame.select("source_row", "administered_at", "birth_date", "dose_g", "weight_kg").row(0) == (
        2,
        datetime(2025, 3, 4, 9, 30),
        date(1980, 1, 2),
        35.0,
        70.5,
    )


def test_not_a_workbook_is_an_input_error(tmp_path: Path) -> None:
    """A file named .xlsx that isn't a workbook raises InputError."""
    path = tmp_path / "t.xlsx"
    path.write_text("patient_id\nP1\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.xlsx: can't be read as an Excel workbook$"):
        read_table(path)


def test_empty_workbook_is_an_input_error(tmp_path: Path) -> None:
    """A workbook without any cell has no header."""
    path = _workbook(tmp_path / "t.xlsx", [])
    with pytest.raises(InputError, match=r"t\.xlsx: the file is empty \(no header row\)$"):
        read_table(path)


# ------------------------------------------------------------------ Parquet
def test_parquet_columns_become_text(tmp_path: Path) -> None:
    """Parquet dates, date-times and numbers become ISO / plain text; rows are numbered from 1."""
    path = tmp_path / "t.parquet"
    pl.DataFrame(
        {
            "administered_at": [datetime(2025, 3, 4, 9, 30), datetime(2025, 3, 4, 9, 30, 15, 250000)],
            "birth_date": [date(1980, 1, 2), None],
            "dose": [35.0, 0.5],
            "patient_id": [1234, 5],
            "is_flagged": [True, False],
        }
    ).write_parquet(path)
    table = read_table(path)
    assert table.select("source_row", "administered_at", "birth_date", "dose", "patient_id", "is_flagged").rows() == [
        (1, "2025-03-04 09:30:00", "1980-01-02", "35.0", "1234", "true"),
        (2, "2025-03-04 09:30:15.250000", None, "0.5", "5", "false"),
    ]


def test_parquet_infusions_load_and_zoned_times_are_rejected(tmp_path: Path, guideline: Guideline) -> None:
    """A Parquet export loads; a time-zone-aware column is kept with its offset and rejected as not local."""
    frame = pl.DataFrame({c: [v, v] for c, v in infusion().items() if c != "administered_at"}).with_columns(
        pl.Series("admin_id", ["A1", "A2"]),
        pl.Series("administered_at", [datetime(2025, 3, 4, 9, 30), datetime(2025, 3, 5, 9, 30)]),
    )
    frame.write_parquet(tmp_path / "ok.parquet")
    loaded = load_infusions(tmp_path / "ok.parquet", guideline, now=NOW)
    assert loaded.frame.get_column("source_row").to_list() == [1, 2]

    frame.with_columns(pl.col("administered_at").dt.replace_time_zone("UTC")).write_parquet(tmp_path / "utc.parquet")
    zoned = load_infusions(tmp_path / "utc.parquet", guideline, now=NOW)
    assert zoned.rejected.item(0, "reason") == (
        "administered_at: '2025-03-04 09:30:00+00:00' has a time-zone offset "
        "(expected local time, like 2025-03-04 09:30)"
    )
    assert zoned.rows_rejected == 2


def test_not_parquet_is_an_input_error(tmp_path: Path) -> None:
    """A file named .parquet that isn't Parquet raises InputError."""
    path = tmp_path / "t.parquet"
    path.write_text("nope", encoding="utf-8")
    with pytest.raises(InputError, match=r"t\.parquet: can't be read as Parquet$"):
        read_table(path)


def test_parquet_zoned_column_text_keeps_the_offset(tmp_path: Path) -> None:
    """A zone-aware Parquet date-time is written with its offset, so nothing silently shifts."""
    path = tmp_path / "t.parquet"
    pl.DataFrame({"collected_at": [datetime(2025, 3, 4, 9, 30, tzinfo=UTC)]}).write_parquet(path)
    assert read_table(path).item(0, "collected_at") == "2025-03-04 09:30:00+00:00"


# ------------------------------------------------------------------ mapping
def test_mapping_csv(tmp_path: Path) -> None:
    """A CSV mapping with header source,canonical gives source -> canonical (canonical case normalised)."""
    path = tmp_path / "map.csv"
    path.write_text("Source , Canonical\nMRN,patient_id\n Given At ,ADMINISTERED_AT\n\n", encoding="utf-8")
    assert read_mapping(path) == {"MRN": "patient_id", "Given At": "administered_at"}


def test_mapping_json_and_toml(tmp_path: Path) -> None:
    """A JSON object and a TOML table are accepted mapping files."""
    (tmp_path / "map.json").write_text(json.dumps({"MRN": "patient_id"}), encoding="utf-8")
    (tmp_path / "map.toml").write_text('MRN = "patient_id"\n"Result Unit" = "unit"\n', encoding="utf-8")
    assert read_mapping(tmp_path / "map.json") == {"MRN": "patient_id"}
    assert read_mapping(tmp_path / "map.toml") == {"MRN": "patient_id", "Result Unit": "unit"}


def test_several_sources_may_map_to_one_canonical_name(tmp_path: Path) -> None:
    """One mapping can serve exports that name the same column differently."""
    path = tmp_path / "map.csv"
    path.write_text("source,canonical\nMRN,patient_id\nPatient Number,patient_id\n", encoding="utf-8")
    assert read_mapping(path) == {"MRN": "patient_id", "Patient Number": "patient_id"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (
            "source,canonical\nMRN,patient\n",
            "unknown canonical column names: patient (expected one of: admin_id, patient_id, administered_at, "
            "product, dose, dose_unit, weight, weight_unit, indication, height, height_unit, sex, birth_date, site, "
            "infusion_rate, infusion_rate_unit, collected_at, test, value, unit, reviewed_on, note)",
        ),
        ("source,canonical\nMRN,patient_id\nmrn ,admin_id\n", "source columns mapped more than once: MRN, mrn"),
        ("from,to\nMRN,patient_id\n", "the mapping file's header must be: source,canonical"),
        ("source,canonical\nMRN\n", "mapping entry 1: expected two names, source and canonical"),
        ("", "the mapping file is empty (expected the header source,canonical)"),
    ],
)
def test_bad_mapping_is_an_input_error(tmp_path: Path, content: str, problem: str) -> None:
    """Unknown canonical names, repeated sources and malformed files are InputErrors on the mapping file."""
    path = tmp_path / "map.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        read_mapping(path)
    assert str(caught.value) == f"{path}: {problem}"


def test_bad_mapping_json_is_an_input_error(tmp_path: Path) -> None:
    """A JSON mapping must be an object of names."""
    path = tmp_path / "map.json"
    path.write_text('["MRN"]', encoding="utf-8")
    with pytest.raises(InputError, match=r"map\.json: expected a table of source name -> canonical name$"):
        read_mapping(path)


def test_mapping_applies_to_every_input(tmp_path: Path) -> None:
    """read_table renames mapped headers case-insensitively; unmapped extras keep their name."""
    mapping = read_mapping(write_csv(tmp_path / "map.csv", [{"source": "MRN", "canonical": "patient_id"}]))
    path = tmp_path / "t.csv"
    path.write_text(" mrn ,Ward\nP1,W\n", encoding="utf-8")
    assert read_table(path, mapping).columns[2:] == ["patient_id", "Ward"]


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("patient_id,note\nP1,x\nP2,y\n", [2, 3]),
        ("patient_id,note\r\nP1,x\r\nP2,y", [2, 3]),
        ('patient_id,note\nP1,"two\nlines"\nP2,y', [2, 4]),
        ('patient_id,note\r\nP1,"two\r\nlines"\r\nP2,y\r\n', [2, 4]),
        ('\npatient_id,note\nP1,"a\n\nb"\n\nP2,y\n', [3, 7]),
    ],
    ids=["plain", "crlf-no-final-break", "quoted-break", "quoted-crlf", "blank-lines-and-breaks"],
)
def test_line_numbers_with_and_without_quoted_line_breaks(tmp_path: Path, text: str, lines: list[int]) -> None:
    """source_row is the line a record starts on, whether or not any field spans lines."""
    path = tmp_path / "t.csv"
    path.write_bytes(text.encode("utf-8"))
    assert read_table(path).get_column("source_row").to_list() == lines


def test_line_numbers_of_a_windows_1252_file_with_a_quoted_line_break(tmp_path: Path) -> None:
    """The cp1252 fallback counts lines in the decoded text."""
    path = tmp_path / "t.csv"
    path.write_bytes('patient_id,note\nP\xe9,"a\nb"\nP2,y\n'.encode("cp1252"))
    table = read_table(path)
    assert table.get_column("source_row").to_list() == [2, 4]
    assert table.get_column("patient_id").to_list() == ["Pé", "P2"]


@settings(max_examples=80, deadline=None)
@given(text=st.text(alphabet='a,"\n\r ;', min_size=1, max_size=60))
def test_lines_of_a_file_are_counted_as_in_its_bytes(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    """Counting a file's lines (polars, quoting off) agrees with counting line breaks in its bytes."""
    data = text.encode("utf-8")
    path = tmp_path_factory.mktemp("lines") / "t.csv"
    path.write_bytes(data)
    assert _count_lines(path) == _count_lines(data) == data.count(b"\n") + (not data.endswith(b"\n"))


#: Every white-space character the blank-cell pattern knows (Unicode White_Space), and others.
WHITE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2005\u200a\u2028\u2029\u202f\u205f\u3000"
OTHER = "!~aZ0-,é\u200b\x00\x7f\U0001f600"


@settings(max_examples=150, deadline=None)
@given(cells=st.lists(st.one_of(st.none(), st.text(alphabet=WHITE + OTHER, min_size=1, max_size=4)), max_size=12))
def test_blank_columns_are_the_columns_with_a_white_space_cell(cells: list[str | None]) -> None:
    """A column is found blank exactly when some cell is white space only, whatever it starts with."""
    body = pl.DataFrame({"c": cells}, schema={"c": pl.String})
    expected = any(cell is not None and all(ch in WHITE for ch in cell) for cell in cells)
    assert _blank_columns(body, ["c"]) == (["c"] if expected else [])
