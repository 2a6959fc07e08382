"""Golden test: the whole workbook's visible content, compared with a committed dump.

After an intended change to the workbook, review the new dump and commit it:
    UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/report
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from report.model import ReportData
from report.workbook import write_workbook
from tests.report.dump import dump_workbook

GOLDEN = Path(__file__).parent / "golden" / "workbook.json"


def test_workbook_matches_golden_dump(written: Path) -> None:
    """Sheets, cell values, number formats, fills, panes, filters, widths, print set-up, charts and links match."""
    dumped = json.dumps(dump_workbook(written), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(dumped, encoding="utf-8")
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/report"
    expected = GOLDEN.read_text(encoding="utf-8")
    assert dumped == expected, "workbook differs from the golden dump (UPDATE_GOLDEN=1 rewrites it after review)"


def test_same_input_gives_byte_identical_workbook(tmp_path: Path, report_data: ReportData) -> None:
    """Two writes of the same data produce the same bytes (no clock, no random names inside)."""
    first, second = tmp_path / "a.xlsx", tmp_path / "b.xlsx"
    write_workbook(report_data, first)
    write_workbook(report_data, second)
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
