"""Sheet-writing machinery shared by the workbook's sheets (openpyxl write-only mode).

``SheetWriter`` owns the workbook and its registered styles; ``detail_sheet``
streams a polars frame into a filterable, printable table; ``Rows`` builds the
free-form Summary and Guideline sheets row by row.

A detail sheet's title, note and header rows go through openpyxl cells like
every other row; its data rows, nearly all the workbook's cells, are rendered
as XML by ``report.fast_rows`` from the same converters and spliced into the
sheet when the workbook is saved (``SheetWriter.data_rows``).
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import polars as pl
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from report.fast_rows import CellFunction, DataColumn, DataRows, placeholder_row
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
    CellSpec,
    Converter,
    Look,
    SpecConverter,
    Styles,
    date_converter,
    date_spec,
    excel_datetime,
    number_converter,
    number_spec,
    text_converter,
    text_spec,
    yes_no,
)
from report.xlsx_cells import FORMULA as FORMULA_CELL
from report.xlsx_cells import LINK as LINK_CELL

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

#: Rows of a detail sheet converted and rendered at a time (column by column within a chunk).
CHUNK_ROWS: Final = 512
#: Distinct wrapped texts per column whose line counts are remembered, and the longest one remembered.
WRAP_CACHE_SIZE: Final = 16_384
WRAP_CACHED_TEXT: Final = 1024


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


def _by_value_type(dtype: pl.DataType | None) -> bool:
    """A column type whose equal values are one Python type and print the same (not Decimal, lists, objects)."""
    if dtype is None:
        return False
    return (
        dtype.is_integer()
        or dtype.is_float()
        or dtype in (pl.String, pl.Boolean, pl.Date)
        or isinstance(dtype, pl.Datetime)
    )


def _line_counter(width: float, indent: int) -> Callable[[Any], int]:
    """``wrapped_lines`` in a column, remembering the counts of the first texts (messages repeat)."""
    known: dict[str, int] = {}

    def count(value: Any) -> int:
        if type(value) is not str:
            return wrapped_lines(value, width, indent=indent)
        lines = known.get(value)
        if lines is None:
            lines = wrapped_lines(value, width, indent=indent)
            if len(known) < WRAP_CACHE_SIZE and len(value) <= WRAP_CACHED_TEXT:
                known[value] = lines
        return lines

    return count


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
        #: openpyxl's temporary file of a detail sheet -> its data rows, spliced in when saving.
        self.data_rows: dict[str, DataRows] = {}

    def remove_data_rows(self) -> None:
        """Remove the data rows' temporary files (after saving they are spliced in and gone already)."""
        for rows in self.data_rows.values():
            rows.discard()

    def discard(self) -> None:
        """After a failure: end every sheet's stream and remove all temporary files."""
        self.remove_data_rows()
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
    def converter(self, kind: str, valign: str | None, *, pad: bool = False) -> SpecConverter:
        """Value -> cell for a column ``kind``; ``pad`` indents left-aligned content by one step."""
        base = Look(valign=valign)
        if kind in NUMBER_FORMATS:
            return number_spec(self.styles, number_look(NUMBER_FORMATS[kind], base))
        if pad:
            base = replace(base, indent=1)
        if kind == "date":
            return date_spec(self.styles, replace(base, number_format=FMT_DATE, halign="left"))
        if kind == "datetime":
            return date_spec(self.styles, replace(base, number_format=FMT_DATETIME, halign="left"))
        if kind == "wrap":
            return text_spec(self.styles, replace(base, wrap=True))
        as_text = text_spec(self.styles, base if valign or pad else None)
        if kind == "yesno":
            return lambda value: as_text(yes_no(value))
        return as_text

    def data_columns(
        self, columns: Sequence[Column], valign: str | None, schema: Mapping[str, pl.DataType] | None = None
    ) -> list[DataColumn]:
        """Per column: the function giving its cell and the frame columns it takes, in order.

        A column of one source whose ``schema`` type prints equal values alike
        (see ``by_value``) is made per distinct value; links never are (they are counted).
        """
        made: list[DataColumn] = []
        previous_right = False
        for column in columns:
            # Left-aligned text right after a right-aligned number gets an indent, so the two never touch.
            pad, previous_right = previous_right, column.kind in RIGHT_ALIGNED
            single = (column.name,)
            if column.kind == "severity":
                made.append(DataColumn(self._severity_function(valign), single))
            elif column.kind == "unit":
                made.append(DataColumn(self._unit_number_function(valign), (column.name, column.unit_from or "")))
            elif column.kind == "censored":
                made.append(DataColumn(self._censored_function(valign), (column.name, column.qualifier_from or "")))
            elif column.kind == "link":
                made.append(DataColumn(self._link_function(column, valign), single))
                continue
            else:
                made.append(DataColumn(self.converter(column.kind, valign, pad=pad), single))
            if schema is not None and len(made[-1].sources) == 1 and _by_value_type(schema.get(column.name)):
                made[-1] = replace(made[-1], by_value=True)
        return made

    def _severity_function(self, valign: str | None) -> CellFunction:
        converters: dict[Any, SpecConverter] = {}

        def cell(severity: Any) -> CellSpec | None:
            convert = converters.get(severity)
            if convert is None:
                convert = text_spec(self.styles, severity_look(severity, valign=valign))
                converters[severity] = convert
            return convert(None if severity is None else severity_label(severity))

        return cell

    def _unit_number_function(self, valign: str | None) -> CellFunction:
        converters: dict[Any, SpecConverter] = {}

        def cell(value: Any, unit: Any) -> CellSpec | None:
            convert = converters.get(unit)
            if convert is None:
                fmt = UNIT_FORMATS.get(unit or "", DEFAULT_UNIT_FORMAT)
                convert = number_spec(self.styles, number_look(fmt, Look(valign=valign)))
                converters[unit] = convert
            return convert(value)

        return cell

    def _censored_function(self, valign: str | None) -> CellFunction:
        """A lab value: a number when exact, text such as "<5.0" when censored (as the lab reported it)."""
        exact = number_spec(self.styles, number_look(FMT_KG, Look(valign=valign)))
        censored = text_spec(self.styles, Look(halign="right", indent=1, valign=valign))

        def cell(value: Any, qualifier: Any) -> CellSpec | None:
            if qualifier is None or value is None:
                return exact(value)
            return censored(f"{qualifier}{value:.1f}" if isinstance(value, float) else f"{qualifier}{value}")

        return cell

    def _link_function(self, column: Column, valign: str | None) -> CellFunction:
        """Target row -> a working internal link; -1 -> beyond the target sheet; None -> not there."""
        link_array = self.styles.array(LINK)
        note = text_spec(self.styles, Look(italic=True, color=NOTE_COLOR, valign=valign))
        sheet_ref = quote_sheet(column.link_sheet or "")
        beyond = f"see {column.link_csv}" if column.link_csv else "not shown"
        links = 0

        def cell(target: Any) -> CellSpec | None:
            nonlocal links
            if target is None:
                return note("not listed")
            if target < 0:
                return note(beyond)
            location = f"{sheet_ref}!A{target}"
            links += 1
            if links <= EXCEL_MAX_HYPERLINKS:
                return (LINK_CELL, ("Go to cycle", location, "Open this row"), link_array)
            return (FORMULA_CELL, f'=HYPERLINK("#{location}","Go to cycle")', link_array)

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

        if shown:
            self._data_rows(ws, columns, frame, valign)
        return DetailResult(rows_written=shown, rows_not_shown=total_rows - shown)

    def _data_rows(
        self, ws: WriteOnlyWorksheet, columns: Sequence[Column], frame: pl.DataFrame, valign: str | None
    ) -> None:
        """``frame``'s rows from row 4 on: a placeholder row now, the rendered rows spliced in at save.

        Works through ``CHUNK_ROWS`` rows at a time, column by column: each
        column's values as a list, mapped through its cell function.
        """
        made = self.data_columns(columns, valign, frame.schema)
        wrapping = [
            (c.name, _line_counter(c.width, 1 if idx and columns[idx - 1].kind in RIGHT_ALIGNED else 0))
            for idx, c in enumerate(columns)
            if c.kind == "wrap"
        ]
        needed = {name for column in made for name in column.sources} | {name for name, _ in wrapping}
        rows = DataRows(ws, made)
        self.data_rows[ws._writer.out] = rows  # known to discard() from here on
        ws.append(placeholder_row(rows.marker))
        for offset in range(0, frame.height, CHUNK_ROWS):
            chunk = frame.slice(offset, CHUNK_ROWS)
            values = {name: chunk.get_column(name).to_list() for name in needed}
            heights: list[float | None] = [None] * chunk.height
            if wrapping:
                lines = [
                    max(counts)
                    for counts in zip(
                        *(list(map(count, values[name])) for name, count in wrapping),
                        strict=True,
                    )
                ]
                heights = [LINE_HEIGHT * n if n > 1 else None for n in lines]
            rows.add_rows(FIRST_DATA_ROW + offset, values, heights)
        rows.close()


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
