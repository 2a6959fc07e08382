"""Shared fixtures for the report tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook
from openpyxl.workbook.workbook import Workbook

from report.model import ReportData
from report.workbook import write_workbook
from tests.report.fixtures import golden_report_data


@pytest.fixture
def report_data() -> ReportData:
    return golden_report_data()


@pytest.fixture
def written(tmp_path: Path, report_data: ReportData) -> Path:
    """The golden fixture written to tmp_path/ivig_audit_report.xlsx."""
    path = tmp_path / "ivig_audit_report.xlsx"
    write_workbook(report_data, path)
    return path


@pytest.fixture
def workbook(written: Path) -> Workbook:
    return load_workbook(written)
