"""Cells and styles for openpyxl's write-only (streaming) worksheets.

Every value goes through a converter, which applies the workbook's text,
number and date rules once and returns a ``CellSpec``: what kind of cell to
write, the value to store and the registered ``StyleArray``. ``to_cell`` turns
a spec into an openpyxl cell (Summary, Guideline and the title rows of every
sheet); ``report.fast_rows`` turns the same specs into worksheet XML for the
detail sheets' data rows. So the rules live here only, whichever path writes
the cell.

In write-only mode every styled value must be a cell object created before the
row is appended. Creating styles through ``cell.font = ...`` for millions of
cells is slow, so each distinct look is registered once as a ``StyleArray`` and
copied into new cells. All text goes through ``text_spec`` (see excel_safe).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.styles.cell_style import StyleArray
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink

from report.excel_safe import clean_text, is_finite_number, needs_text_cell, non_finite_label

FONT_NAME: Final = "Calibri"

# Colours chosen to stay distinct on a greyscale printout (and with the label in the cell).
HEADER_FILL: Final = "D9E1F2"
SECTION_FILL: Final = "B4C6E7"
TITLE_COLOR: Final = "1F3864"
NOTE_COLOR: Final = "595959"
LINK_COLOR: Final = "0563C1"
WARNING_FILL: Final = "FFE699"
OK_FILL: Final = "C6EFCE"
OK_COLOR: Final = "006100"
BAD_FILL: Final = "FFC7CE"
BAD_COLOR: Final = "9C0006"
#: severity -> (fill, font colour, bold)
SEVERITY_LOOK: Final[dict[str, tuple[str, str, bool]]] = {
    "high": ("FFC7CE", "9C0006", True),
    "medium": ("FFE699", "7F6000", False),
    "low": ("EDEDED", "404040", False),
}

FMT_DATE: Final = "yyyy-mm-dd"
FMT_DATETIME: Final = "yyyy-mm-dd hh:mm"
FMT_INT: Final = "0"
FMT_COUNT: Final = "#,##0"
FMT_G: Final = "#,##0.0"
FMT_KG: Final = "0.0"
FMT_G_PER_KG: Final = "0.00"
FMT_PCT: Final = "0.0%"

#: Number format for an observed/limit value in a given unit.
UNIT_FORMATS: Final[dict[str, str]] = {
    "g/kg": FMT_G_PER_KG,
    "g/kg/day": FMT_G_PER_KG,
    "g": FMT_G,
    "kg": FMT_KG,
    "cm": FMT_KG,
    "mg/dL": FMT_KG,
    "days": FMT_INT,
    "day": FMT_INT,
    "infusion days": FMT_INT,
    "cycles": FMT_INT,
    "cycle number": FMT_INT,
}
#: For a unit not listed: two decimals, as g/kg.
DEFAULT_UNIT_FORMAT: Final = "0.00"

YES: Final = "Yes"
NO: Final = "No"

# Kinds of cell a converter asks for (the first item of a CellSpec).
#: Text (a cleaned ``str``), always stored as a string, never a formula.
TEXT: Final = "s"
#: A finite int or float.
NUMBER: Final = "n"
#: A naive ``date`` or ``datetime``, stored as an Excel serial number with a date format.
DATE: Final = "d"
#: A formula the report itself builds (``=HYPERLINK(...)``); never from input.
FORMULA: Final = "f"
#: Text with an internal hyperlink: the value is ``(text, location, tooltip)``.
LINK: Final = "l"

#: (kind, value, style or None): one cell as a converter decided it; None means no cell.
CellSpec = tuple[str, Any, StyleArray | None]


@dataclass(frozen=True)
class Look:
    """One cell appearance; hashable so each is registered once."""

    number_format: str | None = None
    bold: bool = False
    italic: bool = False
    size: float | None = None
    color: str | None = None
    fill: str | None = None
    wrap: bool = False
    halign: str | None = None
    valign: str | None = None
    underline: bool = False
    border_bottom: bool = False
    quote_prefix: bool = False
    indent: int = 0

    def with_quote_prefix(self) -> Look:
        return Look(**{**self.__dict__, "quote_prefix": True})


class Styles:
    """Registers each ``Look`` once on the workbook and makes cells that use it."""

    def __init__(self, ws: WriteOnlyWorksheet) -> None:
        self._ws = ws
        self._arrays: dict[Look, StyleArray] = {}

    def array(self, look: Look) -> StyleArray:
        found = self._arrays.get(look)
        if found is not None:
            return found
        cell = Cell(self._ws, row=1, column=1)
        if look.number_format:
            cell.number_format = look.number_format
        if look.bold or look.italic or look.size or look.color or look.underline:
            cell.font = Font(
                name=FONT_NAME,
                size=look.size or 11,
                bold=look.bold,
                italic=look.italic,
                color=look.color,
                underline="single" if look.underline else None,
            )
        if look.fill:
            cell.fill = PatternFill(fill_type="solid", start_color=look.fill, end_color=look.fill)
        if look.wrap or look.halign or look.valign or look.indent:
            cell.alignment = Alignment(
                wrap_text=look.wrap or None, horizontal=look.halign, vertical=look.valign, indent=look.indent
            )
        if look.border_bottom:
            cell.border = Border(bottom=Side(style="thin", color="808080"))
        array = StyleArray(cell._style) if cell._style is not None else StyleArray()
        if look.quote_prefix:
            array.quotePrefix = 1
        self._arrays[look] = array
        return array


def excel_datetime(value: datetime) -> datetime:
    """Excel has no time zones: keep the wall-clock time."""
    return value.replace(tzinfo=None) if value.tzinfo is not None else value


#: Value -> the cell to write (a Cell, a plain value, or None for no cell).
Converter = Callable[[Any], Any]
#: Value -> what to write (a CellSpec, or None for no cell).
SpecConverter = Callable[[Any], CellSpec | None]


def to_cell(ws: WriteOnlyWorksheet, spec: CellSpec | None) -> Any:
    """The openpyxl cell for ``spec``; a plain string for unstyled text (openpyxl makes its cell)."""
    if spec is None:
        return None
    kind, value, array = spec
    if kind == LINK:
        text, location, tooltip = value
        cell = Cell(ws, row=1, column=1, value=text, style_array=array)
        cell.hyperlink = Hyperlink(ref="A1", location=location, tooltip=tooltip)
        return cell
    if kind == TEXT:
        if array is None:
            return value  # text_spec only leaves safe text unstyled
        cell = Cell(ws, row=1, column=1, value=value, style_array=array)
        cell.data_type = "s"  # even for "=..." or "#N/A": never a formula or an error value
        return cell
    return Cell(ws, row=1, column=1, value=value, style_array=array)


def cells(ws: WriteOnlyWorksheet, convert: SpecConverter) -> Converter:
    """``convert`` returning openpyxl cells instead of specs."""
    return lambda value: to_cell(ws, convert(value))


def as_text(value: Any) -> str:
    """The text a cell shows for ``value``: Yes/No, lists joined with "; ", NaN/infinity named; cleaned."""
    if isinstance(value, bool):
        text = YES if value else NO
    elif isinstance(value, list | tuple):
        text = "; ".join("" if v is None else str(v) for v in value)
    elif isinstance(value, float) and not math.isfinite(value):
        text = non_finite_label(value)
    else:
        text = str(value)
    return clean_text(text)


def text_spec(styles: Styles, look: Look | None) -> SpecConverter:
    """Any value as text; input-derived strings can never become formulas or break the file."""
    quoted_look = (look or Look()).with_quote_prefix()
    # Registered on first use, so a look no cell needs never reaches the workbook's styles.
    array: StyleArray | None = None
    quoted: StyleArray | None = None

    def convert(value: Any) -> CellSpec | None:
        nonlocal array, quoted
        if value is None:
            return None
        text = as_text(value)
        if needs_text_cell(text):
            if quoted is None:
                quoted = styles.array(quoted_look)
            return (TEXT, text, quoted)
        if look is None:
            return (TEXT, text, None)
        if array is None:
            array = styles.array(look)
        return (TEXT, text, array)

    return convert


def number_spec(styles: Styles, look: Look) -> SpecConverter:
    """Numbers as numbers with ``look``'s format; anything else through ``text_spec``."""
    fallback = text_spec(styles, Look(halign="right", valign=look.valign))
    array = styles.array(look)
    isfinite = math.isfinite

    def convert(value: Any) -> CellSpec | None:
        if value is None:
            return None
        kind = type(value)
        # Plain ints and finite floats first (the common case, as is_finite_number decides it).
        if kind is int or (kind is float and isfinite(value)) or is_finite_number(value):
            return (NUMBER, value, array)
        return fallback(value)

    return convert


def date_spec(styles: Styles, look: Look) -> SpecConverter:
    """Dates and date-times as real Excel dates (serial numbers with a date format)."""
    fallback = text_spec(styles, None)
    array = styles.array(look)

    def convert(value: Any) -> CellSpec | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return (DATE, excel_datetime(value), array)
        if isinstance(value, date):
            return (DATE, value, array)
        return fallback(value)

    return convert


def text_converter(ws: WriteOnlyWorksheet, styles: Styles, look: Look | None) -> Converter:
    """``text_spec`` as openpyxl cells."""
    return cells(ws, text_spec(styles, look))


def number_converter(ws: WriteOnlyWorksheet, styles: Styles, look: Look) -> Converter:
    """``number_spec`` as openpyxl cells."""
    return cells(ws, number_spec(styles, look))


def date_converter(ws: WriteOnlyWorksheet, styles: Styles, look: Look) -> Converter:
    """``date_spec`` as openpyxl cells."""
    return cells(ws, date_spec(styles, look))


def yes_no(value: Any) -> Any:
    """Booleans as Yes/No (None stays empty)."""
    if value is None:
        return None
    return YES if value else NO
