"""Make values from input files safe to put in a worksheet cell.

Three hazards, all from text that came out of a site's export:

* formula injection: openpyxl turns any string starting with ``=`` into a
  formula, and Excel itself treats a typed ``+``, ``-`` or ``@`` as the start
  of one. Such strings are written as explicit text cells (``data_type = "s"``)
  with the ``quotePrefix`` style, exactly what Excel does when a user types
  ``'=cmd()``; re-editing the cell in Excel keeps it text.
* characters XML 1.0 can't carry (C0 controls other than tab, LF and CR, and
  U+FFFE/U+FFFF): openpyxl raises ``IllegalCharacterError`` on the first ones
  and writes a corrupt file with the others. Each is replaced by a visible
  escape such as ``\\x07``, so a reviewer sees that the source had one.
* Excel reads ``_xHHHH_`` inside text as an escaped character; a literal one
  from input is protected as ``_x005F_xHHHH_`` so Excel shows it unchanged.

Numbers are never touched: a real ``-1.5`` stays a number.
"""

from __future__ import annotations

import math
import re
from typing import Final

#: Excel's limit for the text in one cell.
MAX_CELL_CHARS: Final = 32_767
#: Shown at the end of a text that had to be shortened to fit in a cell.
TRUNCATION_MARK: Final = " [... shortened to fit in one Excel cell]"

#: A leading character that makes Excel (or a CSV import) read text as a formula.
FORMULA_TRIGGERS: Final = ("=", "+", "-", "@", "\t", "\r")
#: Strings openpyxl would otherwise store as error values instead of text.
ERROR_LITERALS: Final = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"})

_ILLEGAL_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EXCEL_ESCAPE = re.compile("_(x[0-9A-Fa-f]{4}_)")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean_text(value: str) -> str:
    """``value`` with illegal XML characters escaped and cut to one cell's length."""
    if _ILLEGAL_XML.search(value):
        value = _ILLEGAL_XML.sub(_escape, value)
    if "_x" in value:
        value = _EXCEL_ESCAPE.sub(r"_x005F_\1", value)
    if len(value) > MAX_CELL_CHARS:
        value = value[: MAX_CELL_CHARS - len(TRUNCATION_MARK)] + TRUNCATION_MARK
    return value


def needs_text_cell(value: str) -> bool:
    """True when openpyxl or Excel would not keep ``value`` as plain text."""
    return value.startswith(FORMULA_TRIGGERS) or value in ERROR_LITERALS


def is_finite_number(value: object) -> bool:
    """True for an int or a finite float (bool excluded): safe to write as a number."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def non_finite_label(value: float) -> str:
    """Text shown for a NaN or infinite float (Excel has no such numbers)."""
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
