"""Sheet-writing machinery shared by the workbook's sheets (openpyxl write-only mode).

``SheetWriter`` owns the workbook and its registered styles; ``detail_sheet``
streams a polars frame into a filterable, printable table; ``Rows`` builds the
free-form Summary and Guideline sheets row by row.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import polars as pl
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink

from report.model import SHEET_ORDER, ReportData
from report.textfit import LINE_HEIGHT, wrapped_lines
from report.xlsx_cells import (
    DEFAULT_UNIT_FORMAT,
    FMT_COUNT,
    FMT_DATE,
    FMT_DATETIME,
    FMT_G,
    FMT_G_PER_KG,
    FMT_INT,
    FMT_KG,
    HEADER_FILL,
    LINK_COLOR,
    NOTE_COLOR,
    SECTION_FILL,
    SEVERITY_LOOK,
    TITLE_COLOR,
    UNIT_FORMATS,
    Converter,
    Look,
    Styles,
    date_converter,
    excel_datetime,
    number_converter,
    text_converter,
    yes_no,
)

#: Excel's hard limits.
EXCEL_MAX_ROWS: Final = 1_048_576
EXCEL_MAX_COLUMNS: Final = 16_384
#: Excel keeps at most 65,530 hyperlinks per sheet; later rows get a HYPERLINK() formula.
EXCEL_MAX_HYPERLINKS: Final = 65_530

#: Detail sheets: title in row 1, a note in row 2, column headers in row 3.
HEADER_ROW: Final = 3
FIRST_DATA_ROW: Final = HEADER_ROW + 1
MAX_DATA_ROWS: Final = EXCEL_MAX_ROWS - HEADER_ROW

# Looks used across sheets.
TITLE: Final = Look(bold=True, size=16, color=TITLE_COLOR)
SHEET_TITLE: Final = Look(bold=True, size=14, color=TITLE_COLOR)
NOTE: Final = Look(italic=True, color=NOTE_COLOR)
SMALL_NOTE: Final = Look(italic=True, size=9, color=NOTE_COLOR)
SECTION: Final = Look(bold=True, size=12, fill=SECTION_FILL)
HEADER: Final = Look(bold=True, fill=HEADER_FILL, wrap=True, valign="top", border_bottom=True)
HEADER_RIGHT: Final = replace(HEADER, halign="right", indent=1)
BOLD: Final = Look(bold=True)
LINK: Final = Look(color=LINK_COLOR, underline=True, valign="top")

#: Kind of a detail column -> number format (numbers are right-aligned with a small indent).
NUMBER_FORMATS: Final = {"int": FMT_INT, "count": FMT_COUNT, "g": FMT_G, "kg": FMT_KG, "gkg": FMT_G_PER_KG}
RIGHT_ALIGNED: Final = frozenset({*NUMBER_FORMATS, "unit", "censored"})

RowFunction = Callable[[tuple[Any, ...]], Any]


def severity_look(severity: str | None, *, valign: str | None = None) -> Look:
    """Fill and font for a severity label (light fills that stay distinct in greyscale)."""
    fill, color, bold = SEVERITY_LOOK.get(severity or "", ("FFFFFF", "000000", False))
    return Look(fill=fill, color=color, bold=bold, valign=valign)


def severity_label(severity: str | None) -> str:
    return (severity or "").capitalize()


def number_look(fmt: str, base: Look | None = None) -> Look:
    """``base`` with a number format, right-aligned, one indent from the next column."""
    return replace(base or Look(), number_format=fmt, halign="right", indent=1)


def quote_sheet(name: str) -> str:
    """A sheet name as written in a reference: 'Name' with quotes doubled."""
    return "'" + name.replace("'", "''") + "'"


def header_footer_text(text: str) -> str:
    """Header/footer text: '&' starts a code there, so it is doubled."""
    return text.replace("&", "&&")


def _cells_of_row(ws: WriteOnlyWorksheet, values: Sequence[Any], row_idx: int) -> Iterator[Cell]:
    """openpyxl's WriteOnlyWorksheet._values_to_row without its slow path for ready-made cells.

    openpyxl first tries ``cell.value = value`` and, for a Cell, catches the
    ValueError it raises after formatting the cell's repr: for the styled cells
    this report writes, that exception path cost about a tenth of the run time.
    """
    for col_idx, value in enumerate(values, 1):
        if value is None:
            continue
        cell = value if isinstance(value, Cell) else Cell(ws, row=row_idx, column=col_idx, value=value)
        cell.column = col_idx
        cell.row = row_idx
        if cell.hyperlink is not None:
            cell.hyperlink.ref = cell.coordinate
        yield cell


def _plain_function(convert: Converter, i: int) -> RowFunction:
    """The row tuple -> ``convert`` of its ``i``-th value."""

    def cell(row: tuple[Any, ...]) -> Any:
        return convert(row[i])

    return cell


@dataclass(frozen=True)
class Column:
    """One column of a detail sheet: header (with unit), source column, width, kind."""

    header: str
    name: str
    width: float
    # text | wrap | int | count | g | kg | gkg | date | datetime | yesno | severity | unit | censored | link
    kind: str = "text"
    unit_from: str | None = None  # kind "unit": the column that holds this row's unit
    qualifier_from: str | None = None  # kind "censored": the column with "<" / ">" (or null)
    link_sheet: str | None = None  # kind "link": the sheet the row number points into
    link_csv: str | None = None  # kind "link": where a row beyond that sheet's cap is


@dataclass(frozen=True)
class DetailResult:
    rows_written: int
    rows_not_shown: int


class SheetWriter:
    """The workbook (write-only), its registered styles and the shared sheet set-up."""

    def __init__(self, data: ReportData) -> None:
        self.data = data
        self.wb = Workbook(write_only=True)
        self.sheets: dict[str, WriteOnlyWorksheet] = {name: self.wb.create_sheet(name) for name in SHEET_ORDER}
        for ws in self.sheets.values():
            # Instance override (openpyxl is pinned): see _cells_of_row.
            ws._values_to_row = types.MethodType(_cells_of_row, ws)
        self.styles = Styles(self.sheets[SHEET_ORDER[0]])

    def discard(self) -> None:
        """After a failure: end every sheet's stream and remove openpyxl's temporary files."""
        for ws in self.sheets.values():
            rows, stream = getattr(ws, "_rows", None), getattr(ws, "_writer", None)
            with contextlib.suppress(Exception):
                if rows is not None:
                    rows.close()
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()
                with contextlib.suppress(Exception):
                    stream.cleanup()

    # ------------------------------------------------------------ set-up
    def setup_sheet(self, ws: WriteOnlyWorksheet, widths: Sequence[float], *, title_rows: str | None = None) -> None:
        """Column widths, landscape, fit to one page wide, margins, running header and footer."""
        for idx, width in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(idx)].width = width
        ws.page_setup.orientation = "landscape"
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_margins.left = ws.page_margins.right = 0.4
        ws.page_margins.top = ws.page_margins.bottom = 0.6
        ws.page_margins.header = ws.page_margins.footer = 0.3
        if title_rows:
            ws.print_title_rows = title_rows
        profile = self.data.guideline.profile
        ws.oddHeader.left.text = header_footer_text(
            f"ivig-audit: IVIG for dermatomyositis ({profile.name} {profile.version})"
        )
        ws.oddHeader.left.size = 8
        generated = excel_datetime(self.data.generated_at)
        ws.oddHeader.right.text = header_footer_text(f"Generated {generated:%Y-%m-%d %H:%M}")
        ws.oddHeader.right.size = 8
        ws.oddFooter.left.text = "&A"
        ws.oddFooter.left.size = 8
        ws.oddFooter.right.text = "Page &P of &N"
        ws.oddFooter.right.size = 8

    # ------------------------------------------------------------ converters
    def converter(self, ws: WriteOnlyWorksheet, kind: str, valign: str | None, *, pad: bool = False) -> Converter:
        """Value -> cell for a column ``kind``; ``pad`` indents left-aligned content by one step."""
        base = Look(valign=valign)
        if kind in NUMBER_FORMATS:
            return number_converter(ws, self.styles, number_look(NUMBER_FORMATS[kind], base))
        if pad:
            base = replace(base, indent=1)
        if kind == "date":
            return date_converter(ws, self.styles, replace(base, number_format=FMT_DATE, halign="left"))
        if kind == "datetime":
            return date_converter(ws, self.styles, replace(base, number_format=FMT_DATETIME, halign="left"))
        if kind == "wrap":
            return text_converter(ws, self.styles, replace(base, wrap=True))
        as_text = text_converter(ws, self.styles, base if valign or pad else None)
        if kind == "yesno":
            return lambda value: as_text(yes_no(value))
        return as_text

    def row_functions(
        self, ws: WriteOnlyWorksheet, columns: Sequence[Column], names: Sequence[str], valign: str | None
    ) -> list[RowFunction]:
        """One function per column: the row tuple -> the cell (or plain value)."""
        index = {name: i for i, name in enumerate(names)}
        functions: list[RowFunction] = []
        previous_right = False
        for column in columns:
            i = index[column.name]
            # Left-aligned text right after a right-aligned number gets an indent, so the two never touch.
            pad, previous_right = previous_right, column.kind in RIGHT_ALIGNED
            if column.kind == "severity":
                functions.append(self._severity_function(ws, i, valign))
            elif column.kind == "unit":
                functions.append(self._unit_number_function(ws, i, index[column.unit_from or ""], valign))
            elif column.kind == "censored":
                functions.append(self._censored_function(ws, i, index[column.qualifier_from or ""], valign))
            elif column.kind == "link":
                functions.append(self._link_function(ws, i, column, valign))
            else:
                functions.append(_plain_function(self.converter(ws, column.kind, valign, pad=pad), i))
        return functions

    def _severity_function(self, ws: WriteOnlyWorksheet, i: int, valign: str | None) -> RowFunction:
        converters: dict[Any, Converter] = {}

        def cell(row: tuple[Any, ...]) -> Any:
            severity = row[i]
            convert = converters.get(severity)
            if convert is None:
                convert = text_converter(ws, self.styles, severity_look(severity, valign=valign))
                converters[severity] = convert
            return convert(None if severity is None else severity_label(severity))

        return cell

    def _unit_number_function(self, ws: WriteOnlyWorksheet, i: int, unit_i: int, valign: str | None) -> RowFunction:
        converters: dict[Any, Converter] = {}

        def cell(row: tuple[Any, ...]) -> Any:
            unit = row[unit_i]
            convert = converters.get(unit)
            if convert is None:
                fmt = UNIT_FORMATS.get(unit or "", DEFAULT_UNIT_FORMAT)
                convert = number_converter(ws, self.styles, number_look(fmt, Look(valign=valign)))
                converters[unit] = convert
            return convert(row[i])

        return cell

    def _censored_function(self, ws: WriteOnlyWorksheet, i: int, qualifier_i: int, valign: str | None) -> RowFunction:
        """A lab value: a number when exact, text such as "<5.0" when censored (as the lab reported it)."""
        exact = number_converter(ws, self.styles, number_look(FMT_KG, Look(valign=valign)))
        censored = text_converter(ws, self.styles, Look(halign="right", indent=1, valign=valign))

        def cell(row: tuple[Any, ...]) -> Any:
            value, qualifier = row[i], row[qualifier_i]
            if qualifier is None or value is None:
                return exact(value)
            return censored(f"{qualifier}{value:.1f}" if isinstance(value, float) else f"{qualifier}{value}")

        return cell

    def _link_function(self, ws: WriteOnlyWorksheet, i: int, column: Column, valign: str | None) -> RowFunction:
        """Target row -> a working internal link; -1 -> beyond the target sheet; None -> not there."""
        link_array = self.styles.array(LINK)
        note = text_converter(ws, self.styles, Look(italic=True, color=NOTE_COLOR, valign=valign))
        sheet_ref = quote_sheet(column.link_sheet or "")
        beyond = f"see {column.link_csv}" if column.link_csv else "not shown"
        links = 0

        def cell(row: tuple[Any, ...]) -> Any:
            nonlocal links
            target = row[i]
            if target is None:
                return note("not listed")
            if target < 0:
                return note(beyond)
            location = f"{sheet_ref}!A{target}"
            links += 1
            if links <= EXCEL_MAX_HYPERLINKS:
                c = Cell(ws, row=1, column=1, value="Go to cycle", style_array=link_array)
                c.hyperlink = Hyperlink(ref="A1", location=location, tooltip="Open this row")
                return c
            formula = f'=HYPERLINK("#{location}","Go to cycle")'
            return Cell(ws, row=1, column=1, value=formula, style_array=link_array)

        return cell

    # ------------------------------------------------------------ detail sheets
    def detail_sheet(
        self,
        name: str,
        *,
        title: str,
        note: str,
        columns: Sequence[Column],
        frame: pl.DataFrame,
        total_rows: int,
        freeze: str,
        print_columns: int | None = None,
        valign: str | None = None,
    ) -> DetailResult:
        """Title, note, header and ``frame``'s rows (already capped) as a filterable, printable table."""
        ws = self.sheets[name]
        columns = list(columns)[:EXCEL_MAX_COLUMNS]
        self.setup_sheet(ws, [c.width for c in columns], title_rows=f"{HEADER_ROW}:{HEADER_ROW}")
        ws.freeze_panes = freeze
        shown = frame.height
        last_row = HEADER_ROW + shown
        ws.auto_filter.ref = f"A{HEADER_ROW}:{get_column_letter(len(columns))}{last_row}"
        if print_columns:
            ws.print_area = f"A1:{get_column_letter(print_columns)}{last_row}"
        ws.row_dimensions[1].height = 21
        header_lines = max(
            wrapped_lines(c.header, c.width, bold=True, indent=1 if c.kind in RIGHT_ALIGNED else 0) for c in columns
        )
        ws.row_dimensions[HEADER_ROW].height = LINE_HEIGHT * header_lines

        title_text = text_converter(ws, self.styles, SHEET_TITLE)
        note_text = text_converter(ws, self.styles, NOTE)
        ws.append([title_text(title)])
        ws.append([note_text(note)])
        header_text = text_converter(ws, self.styles, HEADER)
        header_padded = text_converter(ws, self.styles, replace(HEADER, indent=1))
        header_right = text_converter(ws, self.styles, HEADER_RIGHT)
        headers = []
        for idx, c in enumerate(columns):
            if c.kind in RIGHT_ALIGNED:
                headers.append(header_right(c.header))
            elif idx and columns[idx - 1].kind in RIGHT_ALIGNED:
                headers.append(header_padded(c.header))
            else:
                headers.append(header_text(c.header))
        ws.append(headers)

        functions = self.row_functions(ws, columns, frame.columns, valign)
        index = {n: i for i, n in enumerate(frame.columns)}
        wrapping = [
            (index[c.name], c.width, 1 if idx and columns[idx - 1].kind in RIGHT_ALIGNED else 0)
            for idx, c in enumerate(columns)
            if c.kind == "wrap"
        ]
        row_number = FIRST_DATA_ROW
        for row in frame.iter_rows():
            if wrapping:
                lines = max(wrapped_lines(row[i], width, indent=indent) for i, width, indent in wrapping)
                if lines > 1:
                    ws.row_dimensions[row_number].height = LINE_HEIGHT * lines
            ws.append([f(row) for f in functions])
            row_number += 1
        return DetailResult(rows_written=shown, rows_not_shown=total_rows - shown)


class Rows:
    """Appends rows to a free-form write-only sheet; tracks the row number and row heights."""

    def __init__(self, writer: SheetWriter, ws: WriteOnlyWorksheet, widths: Sequence[float]) -> None:
        self.writer = writer
        self.ws = ws
        self.widths = list(widths)
        self.row = 0
        self._converters: dict[tuple[str, Look | None], Converter] = {}

    def _converter(self, kind: str, look: Look | None) -> Converter:
        key = (kind, look)
        convert = self._converters.get(key)
        if convert is None:
            styles = self.writer.styles
            if kind == "text":
                convert = text_converter(self.ws, styles, look)
            elif kind == "number":
                convert = number_converter(self.ws, styles, look or Look())
            else:
                convert = date_converter(self.ws, styles, look or Look())
            self._converters[key] = convert
        return convert

    def text(self, value: Any, look: Look | None = None) -> Any:
        return self._converter("text", look)(value)

    def number(self, value: Any, fmt: str = FMT_COUNT, look: Look | None = None) -> Any:
        return self._converter("number", number_look(fmt, look))(value)

    def date(self, value: Any, fmt: str = FMT_DATE, look: Look | None = None) -> Any:
        return self._converter("date", replace(look or Look(), number_format=fmt, halign="left"))(value)

    def filled(self, look: Look) -> Cell:
        """An empty cell that still shows ``look``'s fill (bars across a table)."""
        return Cell(self.ws, row=1, column=1, value=None, style_array=self.writer.styles.array(look))

    def append(self, cells: Sequence[Any] = (), height: float | None = None) -> int:
        """Append one row; its height fits the longest wrapped text unless given."""
        self.row += 1
        if height is None:
            lines = 1
            for idx, cell in enumerate(cells):
                if isinstance(cell, Cell) and cell.has_style and cell.alignment.wrap_text and idx < len(self.widths):
                    font = cell.font
                    lines = max(
                        lines,
                        wrapped_lines(
                            cell.value,
                            self.widths[idx],
                            bold=bool(font.b),
                            size=float(font.sz or 11),
                            indent=int(cell.alignment.indent or 0),
                        ),
                    )
            if lines > 1:
                height = LINE_HEIGHT * lines
        if height:
            self.ws.row_dimensions[self.row].height = height
        self.ws.append(list(cells))
        return self.row

    def blank(self, count: int = 1) -> None:
        for _ in range(count):
            self.append()

    def section(self, title: str) -> int:
        """A filled bar across the sheet's columns with a bold title."""
        return self.append(
            [self.text(title, SECTION), *(self.filled(SECTION) for _ in range(len(self.widths) - 1))], height=18
        )

    def header(self, labels: Sequence[str], right: Sequence[int] = ()) -> int:
        """Table header row; columns in ``right`` hold numbers (right-aligned header)."""
        cells = [self.text(label, HEADER_RIGHT if i in right else HEADER) for i, label in enumerate(labels)]
        lines = max(
            (
                wrapped_lines(label, self.widths[i], bold=True, indent=1 if i in right else 0)
                for i, label in enumerate(labels)
                if i < len(self.widths)
            ),
            default=1,
        )
        return self.append(cells, height=LINE_HEIGHT * lines)

    def pair(self, label: str, value: Any, note: str | None = None, note_column: int = 4) -> int:
        """``label`` in column A, ``value`` in B, an optional small note further right."""
        cells: list[Any] = [self.text(label), value]
        if note:
            cells += [None] * (note_column - 2) + [self.text(note, SMALL_NOTE)]
        return self.append(cells)
