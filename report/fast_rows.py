"""The detail sheets' data rows as worksheet XML text, spliced into openpyxl's sheet when saving.

openpyxl spends nearly all of a large workbook's time on per-cell work: a
``Cell`` object per value, a style lookup per cell and one lxml element
context per cell. The detail sheets hold tens of thousands of rows of a few
distinct styles, so their data rows skip all of that:

1. ``SheetWriter.detail_sheet`` appends, after the header row, one placeholder
   row holding a unique marker (``placeholder_row``) through openpyxl as usual.
2. ``DataRows`` renders the real rows as ``<row>`` XML into a temporary file of
   its own, a chunk of rows at a time, never holding them all in memory. Each
   column's cells come from its ``DataColumn`` function, which returns the
   converters' ``CellSpec`` (``report.xlsx_cells``).
3. When the workbook is saved, the zip writer (``report.workbook``) copies the
   sheet's openpyxl file split by ``split_at_placeholder``: everything before
   the placeholder row, then the rows file in 1 MiB blocks, then the rest. A
   marker not found exactly once is a RuntimeError (nothing is written under
   the final name).

Most cells repeat a value in one style (rule codes, patient ids, units,
common numbers and dates), so a rendered cell (the XML after its reference) is
remembered: per source value for a ``by_value`` column, which then calls its
function once per distinct value, and per (type, value, style) otherwise.
At most ``REMEMBERED_CELLS`` per sheet, texts up to ``CACHED_TEXT`` characters.

The XML is what openpyxl 3.1 with lxml writes for the same cells, attribute
for attribute: text as inline strings (``xml:space="preserve"`` when it has
leading or trailing whitespace; ``&``, ``<``, ``>`` and CR escaped, anything
beyond ASCII as a character reference), numbers and dates as ``t="n"`` with
dates as Excel serial numbers (openpyxl's ``to_excel``), a style id only for
a styled cell (ids come from the workbook's own style list, registered in the
order they are first rendered), row heights as ``ht``/``customHeight``,
hyperlinks added to the sheet's list that openpyxl writes after the rows.
One deliberate difference: a float is written with ``repr`` (the shortest
text that reads back as the same float; integral floats without ".0", as
openpyxl writes them) and an int with all its digits, where openpyxl uses
``%.16g``, which drops the 17th significant digit of some values. What each
value becomes (text, number, date, which style) is decided by the converters
only, so both paths apply the same rules.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Final

from openpyxl.styles.cell_style import StyleArray
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.hyperlink import Hyperlink

from report.xlsx_cells import DATE, FORMULA, LINK, NUMBER, TEXT, CellSpec

#: Block size for copying the rows file into the zip.
COPY_BLOCK: Final = 1 << 20
#: Rendered cells remembered per sheet, all columns together, and the longest text remembered
#: (a cell may hold 32,767 characters): some MiB at most, whatever the number of rows and columns.
REMEMBERED_CELLS: Final = 32_768
CACHED_TEXT: Final = 256

_SURROGATE = re.compile("[\ud800-\udfff]")


#: A column's cell function: the values of its source columns in one row -> its cell (None: no cell).
CellFunction = Callable[..., CellSpec | None]


@dataclass(frozen=True)
class DataColumn:
    """How one column's cells are made: ``function`` of the values of the frame's ``sources``.

    ``by_value``: the function gives the same cell for equal values and the
    column's equal values print the same (one source of one plain type), so a
    rendered cell is remembered per value and the function called once per
    distinct value.
    """

    function: CellFunction
    sources: tuple[str, ...]
    by_value: bool = False


def placeholder_row(marker: str) -> list[Any]:
    """The row appended through openpyxl where the data rows will go."""
    return [marker]


def number_text(value: int | float) -> str:
    """A number as worksheet XML: ints exactly; floats as ``repr`` without a trailing ``.0``.

    Integral floats come out as openpyxl writes them (``120``, ``-0``, ``1e+16``),
    so they read back the same; other floats round-trip exactly.
    """
    if isinstance(value, float):
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return str(int(value))


def escape_text(text: str) -> str:
    """Element text escaped as lxml does (non-ASCII is escaped when the block is encoded)."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "\r" in text:
        text = text.replace("\r", "&#13;")
    return text


def _text_tail(style: str, text: str) -> str:
    """A text cell's XML after its reference."""
    if not text:
        return f'{style} t="inlineStr"></c>'
    preserve = text[0].isspace() or text[-1].isspace()  # openpyxl's test: text != text.strip()
    if "&" in text or "<" in text or ">" in text or "\r" in text:
        text = escape_text(text)
    if preserve:
        return f'{style} t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    return f'{style} t="inlineStr"><is><t>{text}</t></is></c>'


def _cacheable(kind: str, value: Any) -> bool:
    """Whether a rendered cell may be remembered by (type, value, style)."""
    if kind == TEXT:
        return len(value) <= CACHED_TEXT
    if kind == NUMBER:
        return bool(value != 0)  # 0.0 and -0.0 are equal keys but written "0" and "-0"
    return kind == DATE


def _rememberable(value: Any) -> bool:
    """Whether a column's source value may key its rendered cell (equal values print the same)."""
    if isinstance(value, str):
        return len(value) <= CACHED_TEXT
    if isinstance(value, float):
        return math.isfinite(value) and value != 0  # NaN never equals itself; str(-0.0) != str(0.0)
    return True


class DataRows:
    """One sheet's data rows, rendered into a temporary file until the sheet is saved."""

    def __init__(self, ws: WriteOnlyWorksheet, columns: Sequence[DataColumn]) -> None:
        self.marker = f"ivig-audit-data-rows-{secrets.token_hex(16)}"
        wb = ws.parent
        self._cell_styles = wb._cell_styles
        self._epoch = wb.epoch
        # openpyxl writes this list after the rows; its writer (created on the sheet's first row) reset it.
        self._hyperlinks: list[Hyperlink] = ws._hyperlinks
        self._columns = list(columns)
        self._letters = [get_column_letter(i) for i in range(1, len(self._columns) + 1)]
        self._by_value: list[dict[Any, str]] = [{} for _ in self._columns]
        self._style_attrs: dict[int, str] = {}
        self._pinned: list[StyleArray] = []  # keeps the arrays whose id() keys _style_attrs and _tails alive
        self._tails: dict[tuple[type, Any, int], str] = {}
        self._remembered = 0  # entries in _tails and _by_value
        self._block: list[str] = []
        fd, self.path = tempfile.mkstemp(prefix="ivig-audit-rows.", suffix=".xml")
        self._out: IO[bytes] | None = os.fdopen(fd, "wb")

    def _style(self, array: StyleArray) -> str:
        """`` s="N"`` for a styled cell, nothing for an unstyled one (as openpyxl's ``has_style``)."""
        attr = self._style_attrs.get(id(array))
        if attr is None:
            attr = f' s="{self._cell_styles.add(StyleArray(array))}"' if any(array) else ""
            self._style_attrs[id(array)] = attr
            self._pinned.append(array)
        return attr

    def add_rows(self, first_row: int, values: Mapping[str, Sequence[Any]], heights: Sequence[float | None]) -> None:
        """Render ``len(heights)`` rows from ``first_row`` on.

        ``values`` holds the rows' values of every source column, ``heights``
        each row's height in points (None: the default height). The cells are
        made column by column.
        """
        numbers = [str(n) for n in range(first_row, first_row + len(heights))]
        rendered = []
        for letter, column, known in zip(self._letters, self._columns, self._by_value, strict=True):
            sources = [values[name] for name in column.sources]
            if column.by_value:
                rendered.append(self._column_by_value(letter, column.function, sources[0], known, numbers))
            else:
                rendered.append(self._column(letter, list(map(column.function, *sources)), numbers))
        block = self._block
        rows: Iterable[tuple[str, ...]] = zip(*rendered, strict=True) if rendered else [()] * len(numbers)
        for n, height, row in zip(numbers, heights, rows, strict=True):
            block.append(
                f'<row r="{n}" ht="{number_text(float(height))}" customHeight="1">' if height else f'<row r="{n}">'
            )
            block.append("".join(row))
            block.append("</row>")
        self._flush()

    def _column_by_value(
        self, letter: str, function: CellFunction, values: Sequence[Any], known: dict[Any, str], numbers: Sequence[str]
    ) -> list[str]:
        """A ``by_value`` column's ``<c>`` elements: the XML after the reference remembered per value."""
        out: list[str] = []
        append = out.append
        for value, n in zip(values, numbers, strict=True):
            tail = known.get(value)
            if tail is None:
                spec = function(value)
                if spec is not None and spec[0] in (LINK, FORMULA):  # never remembered (a link is counted)
                    append(self._column(letter, [spec], [n])[0])
                    continue
                tail = "" if spec is None else self._tail(*spec)
                if self._remembered < REMEMBERED_CELLS and _rememberable(value):
                    known[value] = tail
                    self._remembered += 1
            append(f'<c r="{letter}{n}"{tail}' if tail else "")
        return out

    def _column(self, letter: str, cells: Sequence[CellSpec | None], numbers: Sequence[str]) -> list[str]:
        """The ``<c>`` elements of one column ("" where there is no cell).

        Most cells repeat a value in the same style (codes, ids, labels, common
        numbers), so the XML after the reference is remembered per value and style.
        """
        known = self._tails
        out: list[str] = []
        append = out.append
        for spec, n in zip(cells, numbers, strict=True):
            if spec is None:
                append("")
                continue
            kind, value, array = spec
            if kind == LINK:
                text, location, tooltip = value
                self._hyperlinks.append(Hyperlink(ref=letter + n, location=location, tooltip=tooltip))
                append(f'<c r="{letter}{n}"{self._tail(TEXT, text, array)}')
                continue
            # with the type: 10**17 and 1e17 are equal keys but written differently
            key = (type(value), value, id(array))
            tail = known.get(key)
            if tail is None:
                tail = self._tail(kind, value, array)
                if self._remembered < REMEMBERED_CELLS and _cacheable(kind, value):
                    known[key] = tail
                    self._remembered += 1
            append(f'<c r="{letter}{n}"{tail}')
        return out

    def _tail(self, kind: str, value: Any, array: StyleArray | None) -> str:
        """A cell's XML after its reference: style, type, value and the closing tag."""
        style = "" if array is None else self._style(array)
        if kind == TEXT:
            return _text_tail(style, value)
        if kind in (NUMBER, DATE):
            number = to_excel(value, self._epoch) if kind == DATE else value
            return f'{style} t="n"><v>{number_text(number)}</v></c>'
        if kind == FORMULA:
            return f"{style}><f>{escape_text(value[1:])}</f><v></v></c>"
        raise ValueError(f"unknown cell kind {kind!r}")

    def _flush(self) -> None:
        if not self._block:
            return
        if self._out is None:
            raise RuntimeError("data rows already closed")
        text = "".join(self._block)
        self._block.clear()
        if not text.isascii() and _SURROGATE.search(text):
            # lxml refuses these too; a character reference to one would make the file unreadable.
            raise ValueError("text with a lone surrogate can't be written to a worksheet")
        self._out.write(text.encode("ascii", "xmlcharrefreplace"))

    def close(self) -> None:
        """Write what is left; the file is complete. The remembered cells and the functions are let go."""
        self._flush()
        if self._out is not None:
            self._out.close()
            self._out = None
        self._forget()

    def _forget(self) -> None:
        # (the column functions refer to the SheetWriter, which refers to this object)
        self._columns, self._by_value, self._tails, self._style_attrs, self._pinned = [], [], {}, {}, []

    def size(self) -> int:
        return os.path.getsize(self.path)

    def copy_to(self, dst: IO[bytes]) -> None:
        """Stream the rendered rows (after ``close``) to ``dst``."""
        with open(self.path, "rb") as src:
            shutil.copyfileobj(src, dst, COPY_BLOCK)

    def discard(self) -> None:
        """Close and remove the rows file (it may already be gone)."""
        self._block.clear()
        self._forget()
        if self._out is not None:
            with contextlib.suppress(OSError):
                self._out.close()
            self._out = None
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


def _placeholder_span(sheet: bytes, marker: str) -> tuple[int, int]:
    """Start and end of the ``<row>`` element holding ``marker`` in a sheet's XML."""
    needle = marker.encode("ascii")
    found = sheet.count(needle)
    if found != 1:
        raise RuntimeError(f"worksheet XML holds the data-row placeholder {found} times, expected once")
    at = sheet.index(needle)
    start = sheet.rfind(b"<row ", 0, at)
    end = sheet.find(b"</row>", at)
    if start < 0 or end < 0:
        raise RuntimeError("worksheet XML: the data-row placeholder is not inside a <row> element")
    return start, end + len(b"</row>")


def split_at_placeholder(sheet_path: str, rows: DataRows) -> tuple[bytes, bytes]:
    """The sheet's XML before and after its placeholder row.

    The sheet file without its data rows is small (title, header, and the tail
    with the hyperlinks), so it is read whole.
    """
    with open(sheet_path, "rb") as src:
        sheet = src.read()
    start, end = _placeholder_span(sheet, rows.marker)
    return sheet[:start], sheet[end:]
