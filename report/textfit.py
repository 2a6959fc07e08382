"""Text widths in Calibri 11 (the workbook's font), to size wrapped rows.

openpyxl can't measure text and write-only sheets can't be auto-fitted, while
neither Excel nor LibreOffice reliably grows a generated row for wrapped text.
So row heights are computed here from the font's advance widths, in 1/1000 em,
for the printable ASCII range and a few symbols. The numbers are those of
Carlito, which is metric-compatible with Calibri (same advance widths).
"""

from __future__ import annotations

from typing import Final

# fmt: off
_CHARS: Final = (
    " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~µ–—≤≥°·…"
)
_REGULAR: Final = (
    226, 326, 401, 498, 507, 715, 682, 221, 303, 303, 498, 498, 250, 306, 252, 386,
    507, 507, 507, 507, 507, 507, 507, 507, 507, 507, 268, 268, 498, 498, 498, 463,
    894, 579, 544, 533, 615, 488, 459, 631, 623, 252, 319, 520, 420, 855, 646, 662,
    517, 673, 543, 459, 487, 642, 567, 890, 519, 487, 468, 307, 386, 307, 498, 498,
    291, 479, 525, 423, 525, 498, 305, 471, 525, 229, 239, 455, 229, 799, 525, 527,
    525, 525, 349, 391, 335, 525, 452, 715, 433, 453, 395, 314, 460, 314, 498, 550,
    498, 905, 498, 498, 339, 252, 690,
)
_BOLD: Final = (
    226, 326, 438, 498, 507, 729, 705, 233, 312, 312, 498, 498, 258, 306, 267, 430,
    507, 507, 507, 507, 507, 507, 507, 507, 507, 507, 276, 276, 498, 498, 498, 463,
    898, 606, 561, 529, 630, 488, 459, 637, 631, 267, 331, 547, 423, 874, 659, 676,
    532, 686, 563, 473, 495, 653, 591, 906, 551, 520, 478, 325, 430, 325, 498, 498,
    300, 494, 537, 418, 537, 503, 316, 474, 537, 246, 255, 480, 246, 813, 537, 538,
    537, 537, 355, 399, 347, 537, 473, 745, 459, 474, 397, 344, 475, 344, 498, 563,
    498, 905, 498, 498, 342, 268, 711,
)
# fmt: on
REGULAR_WIDTHS: Final = dict(zip(_CHARS, _REGULAR, strict=True))
BOLD_WIDTHS: Final = dict(zip(_CHARS, _BOLD, strict=True))
#: Width assumed for a character not in the table (wide, to err towards a taller row).
UNKNOWN_WIDTH: Final = 600
#: East Asian characters are full width.
WIDE_WIDTH: Final = 1000

#: Calibri 11 at 96 dpi: one em in pixels, and the maximum digit width Excel sizes columns by.
EM_PX_AT_11PT: Final = 11 * 96 / 72
DIGIT_PX: Final = 7
#: Pixels a cell keeps free at its left and right edges, and per indent level.
CELL_PADDING_PX: Final = 6
INDENT_PX: Final = 9
#: Points per line of 11-pt text (Excel's default row height).
LINE_HEIGHT: Final = 15.0


def text_px(text: str, *, bold: bool = False, size: float = 11) -> float:
    """Width of ``text`` in pixels at ``size`` points."""
    table = BOLD_WIDTHS if bold else REGULAR_WIDTHS
    total = 0
    for ch in text:
        width = table.get(ch)
        if width is None:
            width = WIDE_WIDTH if ord(ch) >= 0x2E80 else UNKNOWN_WIDTH
        total += width
    return total / 1000 * EM_PX_AT_11PT * size / 11


def column_px(width: float, *, indent: int = 0) -> float:
    """Pixels available for text in a column ``width`` characters wide."""
    return max(1.0, width * DIGIT_PX - CELL_PADDING_PX - indent * INDENT_PX)


def wrapped_lines(value: object, width: float, *, bold: bool = False, indent: int = 0, size: float = 11) -> int:
    """Lines ``value`` takes when word-wrapped in a column ``width`` characters wide."""
    if value is None:
        return 1
    text = value if isinstance(value, str) else str(value)
    room = column_px(width, indent=indent)
    space = text_px(" ", bold=bold, size=size)
    lines = 0
    for paragraph in text.split("\n"):
        lines += 1
        used = 0.0
        for word in paragraph.split(" "):
            word_px = text_px(word, bold=bold, size=size)
            needed = word_px if used == 0 else used + space + word_px
            if needed <= room:
                used = needed
                continue
            if used > 0:
                lines += 1
            # A word longer than the column breaks across lines.
            while word_px > room:
                lines += 1
                word_px -= room
            used = word_px
    return lines
