"""Detail-sheet data rows rendered as XML (report.fast_rows) equal what openpyxl's cells give.

The reference below writes the same rows the way the report did before
fast_rows: one openpyxl cell per value (``to_cell``), explicit row heights,
``ws.append``. Both workbooks are read back with openpyxl and compared cell by
cell: value, type, number format, font, fill, alignment, border, quote prefix,
hyperlink, and every row height, pane, filter and print setting.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from lxml import etree
from openpyxl import load_workbook
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

import report.sheets
import report.workbook
from report.fast_rows import DataRows, number_text
from report.model import SHEET_CYCLES, SHEET_EXCEPTIONS, ReportData
from report.sheets import FIRST_DATA_ROW, RIGHT_ALIGNED, Column, SheetWriter
from report.textfit import LINE_HEIGHT, wrapped_lines
from report.workbook import _save, write_workbook
from report.xlsx_cells import to_cell
from tests.report.fixtures import GENERATED_AT, golden_report_data

LONG_MESSAGE = (
    "Cycle total 140.0 g = 2.46 g/kg of 57.0 kg ideal body weight (limit 2.10 g/kg), given over two days "
    "at the infusion centre; the excess is 20.3 g above the maximum dose with tolerance."
)

#: Every kind of value a detail sheet can meet, hostile text included.
EDGE: list[Any] = [
    None,
    "",
    "  padded ",
    "=1+1",
    "+1",
    "@SUM(A1)",
    "<tag>&amp;",
    "a\r\nb\tc",
    "\r\nstarts with CR",
    "ends with CR\r",
    " <both> & ",
    "é–≤ 日本 😀 \u2028 \x7f\x85",
    "#N/A",
    "-1",
    "id_x0041_z",
    "\x07bell\x00",
    "\ufffe",
    "x" * 40_000,
    0.1 + 0.2,
    1 / 3,
    1e300,
    5e-324,
    -0.0,
    0.0,
    1e16,
    1e17,
    10**17,
    123.0,
    -2.5,
    7,
    0,
    123456789012345678,
    2**53 + 1,
    True,
    False,
    math.nan,
    math.inf,
    -math.inf,
    date(2025, 1, 6),
    date(1900, 1, 1),
    date(1900, 3, 1),
    datetime(2025, 1, 6, 9, 30, 15, 123456),
    datetime(2025, 1, 6, 23, 59, 59, 999999),
    datetime(2025, 1, 6, 9, 30, tzinfo=UTC),
    [1, None, "x"],
    ("a", "=b"),
    Decimal("1.5"),
    LONG_MESSAGE,
]
N = len(EDGE)

COLUMNS = (
    Column("Severity", "severity", 9, "severity"),
    Column("Text", "edge", 20),
    Column("Cycle no.", "int", 7, "int"),
    Column("After a number", "edge", 20),
    Column("Count", "edge", 8, "count"),
    Column("Grams", "edge", 9, "g"),
    Column("kg", "edge", 9, "kg"),
    Column("g/kg", "edge", 9, "gkg"),
    Column("Observed", "edge", 9, "unit", unit_from="unit"),
    Column("Unit", "unit", 8),
    Column("Date", "edge", 12, "date"),
    Column("Date-time", "edge", 17, "datetime"),
    Column("Yes/no", "edge", 6, "yesno"),
    Column("IgA", "iga", 9, "censored", qualifier_from="censor"),
    Column("Message", "message", 30, "wrap"),
    Column("Note", "edge", 12, "wrap"),
    Column("Cycle row", "link", 12, "link", link_sheet="Cycles & 'more'", link_csv="cycles.csv"),
    Column("Last", "edge", 14),
    # typed columns: made once per distinct value (DataColumn.by_value)
    Column("Typed text", "typed_text", 14),
    Column("Typed number", "typed_float", 9, "kg"),
    Column("Number as text", "typed_float", 12),
    Column("Typed date", "typed_date", 12, "date"),
    Column("Typed date-time", "typed_datetime", 17, "datetime"),
    Column("Typed flag", "typed_flag", 6, "yesno"),
    Column("Typed int", "int", 8),
)


def _cycle(values: list[Any], n: int = N) -> list[Any]:
    return [values[i % len(values)] for i in range(n)]


def edge_frame() -> pl.DataFrame:
    messages = [None, "short", LONG_MESSAGE, LONG_MESSAGE + "\n" + LONG_MESSAGE, "word " * 40, 12.5, "  lead"]
    return pl.DataFrame(
        [
            pl.Series("severity", _cycle(["high", "medium", "low", "critical", None]), dtype=pl.String),
            pl.Series("edge", EDGE, dtype=pl.Object),
            pl.Series("int", _cycle([1, None, 2, -3, 10**12]), dtype=pl.Int64),
            pl.Series("unit", _cycle(["g/kg", "g", None, "furlongs", "days"]), dtype=pl.String),
            pl.Series("iga", _cycle([180.0, 5.0, None, 6.25, 700.0]), dtype=pl.Float64),
            pl.Series("censor", _cycle([None, "<", None, ">", None, None]), dtype=pl.String),
            pl.Series("message", _cycle(messages), dtype=pl.Object),
            pl.Series("link", _cycle([4, None, 5, -1, 6, 7, 8, 9]), dtype=pl.Int64),
            pl.Series("typed_text", _cycle([t for t in EDGE if isinstance(t, str) or t is None]), dtype=pl.String),
            pl.Series(
                "typed_float",
                _cycle([0.0, -0.0, 1.5, None, math.nan, math.inf, 0.1 + 0.2, 1.5, -0.0]),
                dtype=pl.Float64,
            ),
            pl.Series(
                "typed_date", _cycle([date(2025, 1, 6), None, date(1900, 2, 28), date(2025, 1, 6)]), dtype=pl.Date
            ),
            pl.Series(
                "typed_datetime",
                _cycle([datetime(2025, 1, 6, 9, 30, 15, 123456), None, datetime(2025, 1, 6, 9, 30, 15, 123456)]),
                dtype=pl.Datetime("us"),
            ),
            pl.Series("typed_flag", _cycle([True, None, False]), dtype=pl.Boolean),
        ]
    )


def reference_data_rows(
    self: SheetWriter, ws: WriteOnlyWorksheet, columns: list[Column], frame: pl.DataFrame, valign: str | None
) -> None:
    """The data rows through openpyxl cells, row by row, as the report wrote them before fast_rows."""
    made = self.data_columns(columns, valign)
    index = {name: i for i, name in enumerate(frame.columns)}
    wrapping = [
        (index[c.name], c.width, 1 if idx and columns[idx - 1].kind in RIGHT_ALIGNED else 0)
        for idx, c in enumerate(columns)
        if c.kind == "wrap"
    ]
    for offset, row in enumerate(frame.iter_rows()):
        row_number = FIRST_DATA_ROW + offset
        lines = max(wrapped_lines(row[i], width, indent=indent) for i, width, indent in wrapping)
        if lines > 1:
            ws.row_dimensions[row_number].height = LINE_HEIGHT * lines
        ws.append([to_cell(ws, c.function(*(row[index[name]] for name in c.sources))) for c in made])


def write_edge_workbook(path: Path, monkeypatch: pytest.MonkeyPatch, *, reference: bool) -> None:
    """The edge rows on two detail sheets (top-aligned and not), in chunks of 7 rows, links past a limit of 3."""
    monkeypatch.setattr(report.sheets, "CHUNK_ROWS", 7)
    monkeypatch.setattr(report.sheets, "EXCEL_MAX_HYPERLINKS", 3)
    if reference:
        monkeypatch.setattr(SheetWriter, "_data_rows", reference_data_rows)
    writer = SheetWriter(golden_report_data())
    try:
        frame = edge_frame()
        for name, valign, freeze in ((SHEET_EXCEPTIONS, "top", "C4"), (SHEET_CYCLES, None, "D4")):
            writer.detail_sheet(
                name,
                title=f"{name} ({N:,})",
                note="Edge values & hostile text.",
                columns=COLUMNS,
                frame=frame,
                total_rows=N + 5,
                freeze=freeze,
                print_columns=11,
                valign=valign,
            )
        _save(writer, path, GENERATED_AT)
    except BaseException:
        writer.discard()
        raise
    finally:
        writer.remove_data_rows()


def _color(color: Any) -> Any:
    return None if color is None else (color.rgb, color.theme, color.tint)


def _cell_facts(cell: Any) -> tuple[Any, ...]:
    font, fill, alignment = cell.font, cell.fill, cell.alignment
    link = cell.hyperlink
    return (
        cell.data_type,
        cell.number_format,
        (font.name, font.b, font.i, font.sz, font.u, _color(font.color)),
        (fill.fill_type, _color(fill.fgColor)),
        (alignment.horizontal, alignment.vertical, alignment.wrap_text, alignment.indent),
        cell.border.bottom.style,
        bool(cell.quotePrefix),
        None if link is None else (link.ref, link.location, link.tooltip, link.target),
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_value(fast: Any, ref: Any) -> bool:
    if _is_number(fast) and _is_number(ref):
        # openpyxl writes %.16g, fast_rows the exact value: the 17th significant digit may differ
        # (and an int of 17+ digits is exact here, 1.234567890123457e+17 there).
        return fast == ref or math.isclose(fast, ref, rel_tol=1e-15, abs_tol=0.0)
    return bool(fast == ref) and type(fast) is type(ref)


def _sheet_facts(ws: Any) -> dict[str, Any]:
    return {
        "dimensions": ws.dimensions,
        "freeze_panes": ws.freeze_panes,
        "auto_filter": ws.auto_filter.ref,
        "print_area": ws.print_area,
        "print_title_rows": ws.print_title_rows,
        "widths": {k: v.width for k, v in ws.column_dimensions.items()},
        "heights": {r: (d.height, d.customHeight) for r, d in ws.row_dimensions.items() if d.height},
        "merged": sorted(str(r) for r in ws.merged_cells.ranges),
    }


@pytest.fixture
def edge_books(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    fast, ref = tmp_path / "fast.xlsx", tmp_path / "reference.xlsx"
    write_edge_workbook(fast, monkeypatch, reference=False)
    with monkeypatch.context() as patch:
        write_edge_workbook(ref, patch, reference=True)
    return fast, ref


def test_rendered_rows_read_back_like_openpyxl_cells(edge_books: tuple[Path, Path]) -> None:
    """Every cell, row height, link and sheet setting of the rendered rows equals the openpyxl-cell reference."""
    fast_path, ref_path = edge_books
    fast_wb, ref_wb = load_workbook(fast_path), load_workbook(ref_path)
    assert fast_wb.sheetnames == ref_wb.sheetnames
    compared = 0
    for name in (SHEET_EXCEPTIONS, SHEET_CYCLES):
        fast, ref = fast_wb[name], ref_wb[name]
        assert _sheet_facts(fast) == _sheet_facts(ref), name
        assert fast.max_row == FIRST_DATA_ROW + N - 1
        for fast_row, ref_row in zip(fast.iter_rows(), ref.iter_rows(), strict=True):
            for f, r in zip(fast_row, ref_row, strict=True):
                assert _same_value(f.value, r.value), (name, f.coordinate, f.value, r.value)
                assert _cell_facts(f) == _cell_facts(r), (name, f.coordinate)
                compared += 1
    assert compared > 2 * N * len(COLUMNS)


def _resolved_styles(archive: zipfile.ZipFile) -> list[bytes]:
    """Each cellXfs entry with its font, fill, border and number format written out (ids differ by order)."""
    styles = etree.fromstring(archive.read("xl/styles.xml"))
    ns = {"m": styles.nsmap[None]}
    parts = {
        name: [etree.tostring(e) for e in styles.findall(f"m:{name}s/m:{name}", ns)]
        for name in ("font", "fill", "border")
    }
    formats = {e.get("numFmtId"): e.get("formatCode") for e in styles.findall("m:numFmts/m:numFmt", ns)}
    resolved = []
    for xf in styles.findall("m:cellXfs/m:xf", ns):
        attrs = dict(xf.attrib)
        key = [parts[name][int(attrs.pop(f"{name}Id", 0))] for name in ("font", "fill", "border")]
        number_format = attrs.pop("numFmtId", "0")
        key.append(formats.get(number_format, number_format).encode())
        key.append(repr(sorted(attrs.items())).encode())
        key.extend(etree.tostring(child) for child in xf)
        resolved.append(b"|".join(key))
    return resolved


def _comparable_sheet_xml(path: Path, sheet: str) -> str:
    """A sheet's XML with style ids replaced by the styles they name and numbers to 15 digits."""
    with zipfile.ZipFile(path) as archive:
        styles = _resolved_styles(archive)
        xml = archive.read(sheet).decode("ascii")
    xml = re.sub(r' s="(\d+)"', lambda m: f' s="{styles[int(m.group(1))].hex()}"', xml)
    return re.sub(r"<v>([^<]+)</v>", lambda m: f"<v>{float(m.group(1)):.15g}</v>", xml)


def test_sheet_xml_is_what_openpyxl_writes(edge_books: tuple[Path, Path]) -> None:
    """The detail sheets' XML equals openpyxl's, attribute for attribute (xml:space, ht, t, links, escapes).

    Only style ids (numbered in the order styles are first used) and the digits
    beyond the 15th of a number may differ.
    """
    fast, ref = edge_books
    for sheet in ("xl/worksheets/sheet2.xml", "xl/worksheets/sheet3.xml"):
        assert _comparable_sheet_xml(fast, sheet) == _comparable_sheet_xml(ref, sheet), sheet


def test_rendered_rows_cover_every_cell_kind(edge_books: tuple[Path, Path]) -> None:
    """The edge sheet really has hostile text, unstyled text, numbers, dates, links, formulas and tall rows."""
    fast_path, _ = edge_books
    wb = load_workbook(fast_path)
    exceptions, cycles = wb[SHEET_EXCEPTIONS], wb[SHEET_CYCLES]
    text = 2  # column B: EDGE as text
    cells = [exceptions.cell(row=FIRST_DATA_ROW + i, column=text) for i in range(N)]
    formula_like = [c for c in cells if c.value in ("=1+1", "+1", "@SUM(A1)", "#N/A", "-1")]
    assert len(formula_like) == 5
    assert all(c.data_type == "s" and c.quotePrefix for c in formula_like)
    assert {c.value for c in cells} >= {"  padded ", "<tag>&amp;", "a\r\nb\tc", "Yes", "No", "NaN", "1; ; x"}
    assert any(c.value == "é–≤ 日本 😀 \u2028 \x7f\x85" for c in cells)
    assert any(c.value == "\\x07bell\\x00" for c in cells)
    assert any(isinstance(c.value, str) and c.value.endswith("shortened to fit in one Excel cell]") for c in cells)
    # unstyled text on the sheet without vertical alignment: no style at all
    assert not cycles.cell(row=FIRST_DATA_ROW + 2, column=text).has_style
    grams = [exceptions.cell(row=FIRST_DATA_ROW + i, column=6) for i in range(N)]
    assert [c.value for c in grams if c.data_type == "n" and c.value is not None] == [
        v for v in EDGE if type(v) in (int, float) and math.isfinite(v)
    ]
    dates = [exceptions.cell(row=FIRST_DATA_ROW + i, column=11) for i in range(N)]
    assert sum(isinstance(c.value, datetime) for c in dates) == 6
    links = [exceptions.cell(row=FIRST_DATA_ROW + i, column=17) for i in range(N)]
    assert sum(c.hyperlink is not None for c in links) == 3
    formulas = [c.value for c in links if c.data_type == "f"]
    assert formulas
    assert all(f.startswith("=HYPERLINK(\"#'Cycles & ''more'''!A") for f in formulas)
    assert {"see cycles.csv", "not listed"} <= {c.value for c in links}
    heights = {r: d.height for r, d in exceptions.row_dimensions.items() if d.height and r >= FIRST_DATA_ROW}
    assert len(set(heights.values())) >= 3


def test_numbers_and_dates_are_written_exactly(edge_books: tuple[Path, Path]) -> None:
    """Floats read back as the same float (openpyxl's %.16g would round 0.1 + 0.2); dates as openpyxl's serials."""
    fast_path, _ = edge_books
    with zipfile.ZipFile(fast_path) as archive:
        sheet = archive.read("xl/worksheets/sheet2.xml").decode("ascii")
    grams = dict(re.findall(r'<c r="F(\d+)"[^>]*t="n"><v>([^<]*)</v>', sheet))
    written = []
    for i, value in enumerate(EDGE):
        if type(value) in (int, float) and math.isfinite(value):
            text = grams[str(FIRST_DATA_ROW + i)]
            assert float(text) == float(value), value
            written.append((type(value), repr(value), text))
    expected = [
        (float, "0.30000000000000004", "0.30000000000000004"),
        (int, "123456789012345678", "123456789012345678"),  # ints exactly
        (float, "123.0", "123"),  # integral floats as openpyxl writes them
        (float, "-0.0", "-0"),
        (float, "0.0", "0"),
        (int, "0", "0"),
        (float, "1e+16", "1e+16"),
        (float, "1e+17", "1e+17"),
        (int, "100000000000000000", "100000000000000000"),
    ]
    for item in expected:
        assert item in written, item
    dates = dict(re.findall(r'<c r="K(\d+)"[^>]*t="n"><v>([^<]*)</v>', sheet))
    for i, value in enumerate(EDGE):
        if isinstance(value, date):
            naive = value.replace(tzinfo=None) if isinstance(value, datetime) else value
            assert float(dates[str(FIRST_DATA_ROW + i)]) == to_excel(naive)


def test_number_text_round_trips_and_keeps_openpyxl_shapes() -> None:
    """Every float reads back as itself; integral and short values look as openpyxl writes them."""
    for value in [0.0, -0.0, 1.0, 120.0, 2.1, 1e-05, 0.0001, 1e15, 1e16, 1e300, -7.25, 45964.0, 109.8]:
        assert number_text(value) == "%.16g" % value, value  # noqa: UP031 (openpyxl's own format)
    for value in [0.1 + 0.2, 1 / 3, 5e-324, 84.413540057, 109.80000000000004, 2.0**0.5 * 1e200, -1e-300]:
        assert float(number_text(value)) == value, value
    assert number_text(7) == "7"
    assert number_text(-(10**18)) == "-1000000000000000000"


# --------------------------------------------------------------------- temporary files and failures
@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where openpyxl and fast_rows put their temporary files during the test."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    return out


def test_successful_write_leaves_no_temporary_files(tmp_path: Path, temp_dir: Path, report_data: ReportData) -> None:
    out = _out(tmp_path)
    write_workbook(report_data, out / "ivig_audit_report.xlsx")
    assert [p.name for p in out.iterdir()] == ["ivig_audit_report.xlsx"]
    assert list(temp_dir.iterdir()) == []


def test_missing_placeholder_fails_loudly_and_cleans_up(
    tmp_path: Path, temp_dir: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the sheet does not hold the marker, saving stops with RuntimeError: no report, no temporary files."""
    monkeypatch.setattr(report.sheets, "placeholder_row", lambda marker: ["no marker here"])
    out = _out(tmp_path)
    with pytest.raises(RuntimeError, match="placeholder 0 times"):
        write_workbook(report_data, out / "ivig_audit_report.xlsx")
    assert list(out.iterdir()) == []
    assert list(temp_dir.iterdir()) == []


def test_placeholder_found_twice_is_refused(
    tmp_path: Path, temp_dir: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report.sheets, "placeholder_row", lambda marker: [marker, marker])
    out = _out(tmp_path)
    with pytest.raises(RuntimeError, match="placeholder 2 times"):
        write_workbook(report_data, out / "ivig_audit_report.xlsx")
    assert list(out.iterdir()) == []
    assert list(temp_dir.iterdir()) == []


def test_failure_while_rendering_rows_cleans_up(
    tmp_path: Path, temp_dir: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error half-way through a sheet's rows removes that rows file and openpyxl's files."""
    render = DataRows._tail
    calls = 0

    def failing(self: DataRows, *args: Any) -> str:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise OSError("disk full")
        return render(self, *args)

    monkeypatch.setattr(DataRows, "_tail", failing)
    out = _out(tmp_path)
    with pytest.raises(OSError, match="disk full"):
        write_workbook(report_data, out / "ivig_audit_report.xlsx")
    assert calls > 20
    assert list(out.iterdir()) == []
    assert list(temp_dir.iterdir()) == []


def test_failure_in_zip_after_splicing_cleans_up(
    tmp_path: Path, temp_dir: Path, report_data: ReportData, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the zip is written, after two sheets were spliced, leaves no file behind either."""
    write = report.workbook._FixedTimeZip.write

    def failing(self: Any, filename: Any, arcname: Any = None, *args: Any, **kwargs: Any) -> None:
        if arcname == "xl/worksheets/sheet4.xml":
            raise OSError("no space left")
        write(self, filename, arcname, *args, **kwargs)

    monkeypatch.setattr(report.workbook._FixedTimeZip, "write", failing)
    out = _out(tmp_path)
    with pytest.raises(OSError, match="no space left"):
        write_workbook(report_data, out / "ivig_audit_report.xlsx")
    assert list(out.iterdir()) == []
    assert list(temp_dir.iterdir()) == []


def test_lone_surrogate_is_refused_like_lxml(tmp_path: Path, temp_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Text openpyxl's lxml writer refuses (a lone surrogate) is refused here too, not written as a bad reference."""
    writer = SheetWriter(golden_report_data())
    frame = pl.DataFrame([pl.Series("edge", ["ok", "bad \ud800 text"], dtype=pl.Object)])
    try:
        with pytest.raises(ValueError, match="surrogate"):
            writer.detail_sheet(
                SHEET_EXCEPTIONS,
                title="t",
                note="n",
                columns=[Column("Text", "edge", 10)],
                frame=frame,
                total_rows=2,
                freeze="A4",
            )
    finally:
        writer.discard()
    assert list(temp_dir.iterdir()) == []


# --------------------------------------------------------------------- LibreOffice
SOFFICE = shutil.which("soffice") or shutil.which("libreoffice")


@pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) not installed")
def test_libreoffice_reads_the_rendered_rows(tmp_path: Path, edge_books: tuple[Path, Path]) -> None:
    """LibreOffice opens the edge workbook and shows the hostile text as text, the links and the numbers."""
    fast, _ = edge_books
    out = tmp_path / "csv"
    out.mkdir()
    assert SOFFICE is not None
    completed = subprocess.run(
        [
            SOFFICE,
            f"-env:UserInstallation={(tmp_path / 'lo-profile').as_uri()}",
            "--headless",
            "--norestore",
            "--convert-to",
            # all sheets, UTF-8, cell text as shown
            "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,true,false,false,-1",
            "--outdir",
            str(out),
            str(fast),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    csv = out / "fast-Exceptions.csv"
    assert csv.exists(), sorted(p.name for p in out.iterdir())
    text = csv.read_text(encoding="utf-8")
    for shown in ("=1+1", "@SUM(A1)", "<tag>&amp;", "é–≤ 日本 😀", "Go to cycle", "see cycles.csv", "High", "Yes"):
        assert shown in text, shown
    assert "#NAME?" not in text
    assert "Err:" not in text
    assert "0.30" in text  # 0.1 + 0.2 with the g/kg format
