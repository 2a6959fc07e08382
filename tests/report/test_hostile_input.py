"""Text from input files can't become a formula or break the workbook; numbers stay numbers."""

from __future__ import annotations

import zipfile
from datetime import date
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from report.excel_safe import MAX_CELL_CHARS, clean_text, needs_text_cell
from report.model import ReportData
from report.workbook import write_workbook
from tests.report.fixtures import (
    cycle,
    cycles_frame,
    finding,
    findings_frame,
    golden_report_data,
    infusion,
    infusions_frame,
    rejected_frame,
)

HOSTILE = ["=1+1", "+1", "-1", "@SUM(A1)", "\x07bell", "\x00", "=cmd()", "#N/A", "\tTAB", "-2+3", '=HYPERLINK("x")']


def _hostile_data() -> ReportData:
    base = golden_report_data()
    findings = findings_frame(
        [
            finding(
                "DOSE_ABOVE_MAX",
                "high",
                text,
                1,
                1,
                date(2025, 1, 6),
                observed=-1.5,
                limit=-2.0,
                unit="g/kg",
                excess_g=-0.25,
                message=text,
                admin_ids=[text, "ok"],
            )
            for text in HOSTILE
        ]
    )
    cycles = cycles_frame([cycle(text, 1, 1, date(2025, 1, 6), products=text) for text in HOSTILE])
    rejected = rejected_frame(
        [
            {"source_file": text, "source_row": i + 2, "reason": text, "=bad header": text, "dose": "-5"}
            for i, text in enumerate(HOSTILE)
        ],
        ["=bad header", "dose"],
    )
    out_of_scope = infusions_frame([infusion(i + 2, text, text, text, site=text) for i, text in enumerate(HOSTILE)])
    return ReportData(
        **{
            **base.__dict__,
            "findings": findings,
            "cycles": cycles,
            "rejected": rejected,
            "out_of_scope": out_of_scope,
        }
    )


def _workbook_xml(path: Path) -> str:
    with zipfile.ZipFile(path) as archive:
        return "".join(
            archive.read(name).decode("utf-8") for name in archive.namelist() if name.startswith("xl/worksheets/")
        )


def test_hostile_strings_are_text_cells_never_formulas(tmp_path: Path) -> None:
    """'=1+1', '+1', '-1', '@SUM(A1)', '#N/A' from input are stored as text with a quote prefix; no formula."""
    path = tmp_path / "hostile.xlsx"
    write_workbook(_hostile_data(), path)
    assert "<f>" not in _workbook_xml(path)  # not one formula in any sheet
    wb = load_workbook(path)
    seen: dict[str, int] = {}
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            for cell in row:
                if isinstance(cell.value, str) and needs_text_cell(cell.value):
                    assert cell.data_type == "s", (ws.title, cell.coordinate, cell.value)
                    assert cell.quotePrefix, (ws.title, cell.coordinate, cell.value)
                    seen[cell.value] = seen.get(cell.value, 0) + 1
    for text in ("=1+1", "+1", "-1", "@SUM(A1)", "=cmd()", "#N/A", "\tTAB", "=bad header"):
        assert seen.get(text, 0) >= 1, text


def test_control_characters_are_escaped_not_fatal(tmp_path: Path) -> None:
    """A bell or NUL character in input is shown as a visible escape instead of crashing openpyxl."""
    path = tmp_path / "control.xlsx"
    write_workbook(_hostile_data(), path)
    texts = {c.value for ws in load_workbook(path).worksheets for row in ws.iter_rows() for c in row}
    assert "\\x07bell" in texts
    assert "\\x00" in texts
    assert not any(isinstance(t, str) and ("\x07" in t or "\x00" in t) for t in texts)


def test_negative_numbers_stay_numbers(tmp_path: Path) -> None:
    """Observed -1.5, limit -2.0 and excess -0.25 are numeric cells, not text."""
    path = tmp_path / "numbers.xlsx"
    write_workbook(_hostile_data(), path)
    ws = load_workbook(path)["Exceptions"]
    observed, limit, excess = ws["G4"], ws["H4"], ws["J4"]
    assert (observed.value, limit.value, excess.value) == (-1.5, -2.0, -0.25)
    assert {observed.data_type, limit.data_type, excess.data_type} == {"n"}


def test_text_that_looks_numeric_in_rejected_rows_stays_as_typed(tmp_path: Path) -> None:
    """An original value "-5" of a rejected row is shown as the text the file had."""
    path = tmp_path / "rejected.xlsx"
    write_workbook(_hostile_data(), path)
    ws = load_workbook(path)["Rejected rows"]
    assert ws["E4"].value == "-5"
    assert ws["E4"].data_type == "s"


def test_clean_text_escapes_every_illegal_character() -> None:
    """Every C0 control except tab/LF/CR, and U+FFFE/U+FFFF, becomes a visible escape."""
    for code in [*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)]:
        assert clean_text(chr(code)) == f"\\x{code:02x}"
    assert clean_text("a\tb\nc\rd") == "a\tb\nc\rd"
    assert clean_text("\ufffe\uffff") == "\\ufffe\\uffff"


def test_clean_text_protects_excel_escape_sequences() -> None:
    """A literal _x0041_ is written as _x005F_x0041_, which Excel displays as _x0041_."""
    assert clean_text("id_x0041_z") == "id_x005F_x0041_z"
    assert clean_text("_x_ and _xyz") == "_x_ and _xyz"


def test_clean_text_shortens_to_excels_cell_limit() -> None:
    """Text longer than 32,767 characters is cut, with a marker saying so."""
    cleaned = clean_text("a" * 40_000)
    assert len(cleaned) == MAX_CELL_CHARS
    assert cleaned.endswith("shortened to fit in one Excel cell]")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(max_size=40), min_size=1, max_size=4))
def test_any_input_text_round_trips_as_text(tmp_path: Path, texts: list[str]) -> None:
    """Whatever text a rejected row holds, the workbook is written and shows it (cleaned) as text."""
    base = golden_report_data()
    rejected = rejected_frame(
        [{"source_file": "f.csv", "source_row": i + 2, "reason": "r", "value": t} for i, t in enumerate(texts)],
        ["value"],
    )
    path = tmp_path / "any.xlsx"
    write_workbook(ReportData(**{**base.__dict__, "rejected": rejected}), path)
    ws = load_workbook(path)["Rejected rows"]
    shown = [ws.cell(row=4 + i, column=4) for i in range(len(texts))]
    for text, cell in zip(texts, shown, strict=True):
        expected = clean_text(text)
        # openpyxl escapes CR with lxml installed (kept); the stdlib writer leaves it bare (read back as LF)
        assert (cell.value or "") in {expected, expected.replace("\r", "\n")}
        assert cell.value is None or cell.data_type == "s"
