"""Dump a written workbook's content to plain JSON data, for golden comparisons."""

from __future__ import annotations

from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet


def _value(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 9)
    return value


def _fill(cell: Any) -> str | None:
    fill = cell.fill
    if fill is None or fill.fill_type != "solid":
        return None
    rgb = fill.fgColor.rgb
    return rgb if isinstance(rgb, str) else None


def _cells(ws: Worksheet) -> dict[str, list[Any]]:
    """coordinate -> [value, data type, number format, fill, bold, quotePrefix] for every non-empty cell."""
    cells: dict[str, list[Any]] = {}
    for row in ws.iter_rows():
        for cell in row:
            fill = _fill(cell)
            if cell.value is None and fill is None:
                continue
            cells[cell.coordinate] = [
                _value(cell.value),
                cell.data_type,
                cell.number_format,
                fill,
                bool(cell.font.b),
                bool(cell.quotePrefix),
            ]
    return cells


def _sheet(ws: Worksheet) -> dict[str, Any]:
    return {
        "dimensions": ws.dimensions,
        "freeze_panes": ws.freeze_panes,
        "auto_filter": ws.auto_filter.ref,
        "column_widths": {k: v.width for k, v in sorted(ws.column_dimensions.items()) if v.width},
        "row_heights": {str(k): v.height for k, v in sorted(ws.row_dimensions.items()) if v.height},
        "merged": sorted(str(r) for r in ws.merged_cells.ranges),
        "print_title_rows": ws.print_title_rows,
        "print_area": ws.print_area,
        "orientation": ws.page_setup.orientation,
        "fit_to_width": ws.page_setup.fitToWidth,
        "fit_to_height": ws.page_setup.fitToHeight,
        "fit_to_page": ws.sheet_properties.pageSetUpPr.fitToPage if ws.sheet_properties.pageSetUpPr else None,
        "row_breaks": [b.id for b in ws.row_breaks.brk],
        "header": [ws.oddHeader.left.text, ws.oddHeader.right.text],
        "footer": [ws.oddFooter.left.text, ws.oddFooter.right.text],
        "charts": [
            {"type": type(chart).__name__, "bar_dir": getattr(chart, "barDir", None), "series": len(chart.series)}
            for chart in ws._charts
        ],
        "hyperlinks": {link.ref: link.location for link in ws._hyperlinks} if hasattr(ws, "_hyperlinks") else {},
        "cells": _cells(ws),
    }


def dump_workbook(path: Path) -> dict[str, Any]:
    """Everything a reviewer would see in the workbook, as JSON-ready data."""
    wb = load_workbook(path)
    hyperlinks: dict[str, dict[str, str]] = {}
    for ws in wb.worksheets:
        links = {}
        for row in ws.iter_rows():
            for cell in row:
                if cell.hyperlink is not None:
                    links[cell.coordinate] = cell.hyperlink.location or cell.hyperlink.target
        hyperlinks[ws.title] = links
    sheets = {}
    for ws in wb.worksheets:
        data = _sheet(ws)
        data["hyperlinks"] = hyperlinks[ws.title]
        sheets[ws.title] = data
    return {
        "sheet_names": wb.sheetnames,
        "properties": {
            "created": _value(wb.properties.created),
            "modified": _value(wb.properties.modified),
            "creator": wb.properties.creator,
            "title": wb.properties.title,
        },
        "sheets": sheets,
    }
