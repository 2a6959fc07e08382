"""Small, hand-made report inputs with exactly the dtypes of audit.frames."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import polars as pl

from audit.frames import CYCLES, FINDINGS, INFUSIONS, REJECTED_KEYS
from audit.guideline import RULE_CODES, Guideline
from report.model import ReportData
from validators.guideline_source import load_guideline

GENERATED_AT = datetime(2026, 11, 22, 3, 0, 0)

_FINDING_DEFAULTS: dict[str, Any] = {
    "observed": None,
    "limit": None,
    "unit": None,
    "excess_g": None,
    "message": "",
    "admin_ids": [],
}


def findings_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """A FINDINGS frame; missing optional fields default to null / empty."""
    full = [{**_FINDING_DEFAULTS, **row} for row in rows]
    return pl.DataFrame(full, schema=FINDINGS) if full else pl.DataFrame(schema=FINDINGS)


def finding(
    rule: str, severity: str, patient: str, course: int, cycle: int, start: date, **extra: Any
) -> dict[str, Any]:
    return {
        "rule_code": rule,
        "severity": severity,
        "patient_id": patient,
        "course_id": f"{patient}-C{course}",
        "cycle_number": cycle,
        "cycle_start": start,
        **extra,
    }


def cycle(patient: str, course: int, number: int, start: date, **extra: Any) -> dict[str, Any]:
    """A CYCLES row for an adult woman of 165 cm given 2 x 60 g of Privigen."""
    row: dict[str, Any] = {
        "patient_id": patient,
        "course_id": f"{patient}-C{course}",
        "cycle_number": number,
        "cycle_start": start,
        "cycle_end": date.fromordinal(start.toordinal() + 1),
        "first_admin_at": datetime(start.year, start.month, start.day, 9, 30),
        "infusion_days": 2,
        "administrations": 2,
        "total_g": 120.0,
        "actual_weight_kg": 70.0,
        "height_cm": 165.0,
        "sex": "F",
        "age_years": 54,
        "ibw_kg": 57.0,
        "dosing_weight_kg": 57.0,
        "weight_basis": "ideal",
        "g_per_kg": 120.0 / 57.0,
        "max_daily_g": 60.0,
        "max_daily_g_per_kg": 60.0 / 57.0,
        "max_gap_days": 1,
        "interval_days": None if number == 1 else 28,
        "products": "Privigen",
        "is_iga_reduced_only": False,
        "iga_status": "normal",
        "iga_collected_at": datetime(2024, 12, 20, 8, 0),
        "iga_mg_dl": 180.0,
        "iga_censor": None,
        "has_review_in_window": None,
        "admin_ids": [f"{patient}-{number}-a", f"{patient}-{number}-b"],
        "exception_count": 0,
        "in_period": True,
    }
    row.update(extra)
    return row


def cycles_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=CYCLES) if rows else pl.DataFrame(schema=CYCLES)


def rejected_frame(rows: list[dict[str, Any]], original_columns: list[str]) -> pl.DataFrame:
    schema: dict[str, pl.DataType] = {**REJECTED_KEYS, **{c: pl.String() for c in original_columns}}
    return pl.DataFrame(rows, schema=schema) if rows else pl.DataFrame(schema=schema)


def infusion(source_row: int, admin_id: str, patient: str, indication: str, **extra: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_file": "infusions.csv",
        "source_row": source_row,
        "admin_id": admin_id,
        "patient_id": patient,
        "administered_at": datetime(2025, 3, 4, 9, 30),
        "product": "Privigen",
        "dose_g": 35.0,
        "weight_kg": 68.5,
        "height_cm": 170.0,
        "sex": "M",
        "birth_date": date(1970, 5, 1),
        "indication": indication,
        "site": "North",
        "infusion_rate_mg_kg_min": None,
    }
    row.update(extra)
    return row


def infusions_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=INFUSIONS) if rows else pl.DataFrame(schema=INFUSIONS)


def summary_for(findings: pl.DataFrame, cycles: pl.DataFrame, guideline: Guideline, **overrides: Any) -> dict[str, Any]:
    """A summary dict shaped like audit.summary.build_summary's, consistent with the frames."""
    in_period = cycles.filter(pl.col("in_period"))
    by_rule = dict(findings.group_by("rule_code").len().iter_rows())
    by_severity = dict(findings.group_by("severity").len().iter_rows())
    flagged = dict(
        findings.select("rule_code", "course_id", "cycle_number").unique().group_by("rule_code").len().iter_rows()
    )
    n_cycles = in_period.height
    excess = float(findings.get_column("excess_g").drop_nulls().sum())
    summary: dict[str, Any] = {
        "tool": {"name": "ivig-audit", "version": "0.1.0"},
        "generated_at": GENERATED_AT.isoformat(timespec="seconds"),
        "period": {"start": "2025-01-01", "end": "2025-12-31"},
        "guideline": {
            "name": guideline.profile.name,
            "version": guideline.profile.version,
            "title": guideline.profile.title,
            "sha256": "0" * 64,
        },
        "inputs": [
            {"kind": "infusions", "file": "sample_data/infusions.csv", "sha256": "a" * 64, "rows_read": 14},
            {"kind": "labs", "file": "sample_data/labs.csv", "sha256": "b" * 64, "rows_read": 6},
            {"kind": "reviews", "file": "sample_data/reviews.csv", "sha256": "c" * 64, "rows_read": 1},
        ],
        "reconciliation": {
            "rows_read": 14,
            "rows_audited": 8,
            "rows_out_of_scope": 2,
            "rows_rejected": 3,
            "rows_duplicate": 1,
            "balanced": True,
        },
        "labs": {
            "rows_read": 6,
            "rows_used": 3,
            "rows_ignored_other_tests": 1,
            "rows_rejected": 2,
            "rows_duplicate": 0,
        },
        "reviews": {"rows_read": 1, "rows_used": 1, "rows_rejected": 0, "rows_duplicate": 0},
        "audited": {
            "patients": in_period.get_column("patient_id").n_unique(),
            "courses": in_period.get_column("course_id").n_unique(),
            "cycles": n_cycles,
        },
        "exceptions": {
            "total": findings.height,
            "by_rule": {code: int(by_rule.get(code, 0)) for code in RULE_CODES},
            "by_severity": {s: int(by_severity.get(s, 0)) for s in ("high", "medium", "low")},
        },
        "compliance_by_rule": {
            code: round(100.0 * (1 - flagged.get(code, 0) / n_cycles), 2) if n_cycles else None for code in RULE_CODES
        },
        "excess_g_total": round(excess, 3),
        "excess_cost": round(excess * 100.0, 2),
        "currency": "USD",
        "price_per_g": 100.0,
        "pseudonymized": False,
        "timings_s": {"read": 0.01, "validate": 0.02, "audit": 0.03},
    }
    summary.update(overrides)
    return summary


def golden_report_data() -> ReportData:
    """The golden fixture: a few findings of each severity, cycles, hostile rejected rows."""
    guideline = load_guideline()
    cycles = cycles_frame(
        [
            cycle(
                "P002",
                1,
                1,
                date(2025, 2, 3),
                exception_count=2,
                total_g=160.0,
                g_per_kg=160.0 / 57.0,
                max_daily_g=80.0,
                max_daily_g_per_kg=80.0 / 57.0,
                iga_status="not screened",
                iga_collected_at=None,
                iga_mg_dl=None,
            ),
            cycle("P001", 1, 1, date(2025, 1, 6), exception_count=0),
            cycle("P001", 1, 2, date(2025, 2, 10), interval_days=35, exception_count=0),
            cycle("P001", 1, 3, date(2025, 3, 24), interval_days=42, exception_count=1),
            cycle(
                "P003",
                1,
                1,
                date(2025, 3, 3),
                exception_count=2,
                sex=None,
                ibw_kg=None,
                dosing_weight_kg=None,
                weight_basis="unknown",
                g_per_kg=None,
                max_daily_g_per_kg=None,
                iga_status="deficient",
                iga_mg_dl=5.0,
                iga_censor="<",
                products="Gammagard S/D; Privigen",
            ),
            cycle(
                "P003",
                1,
                2,
                date(2025, 3, 17),
                interval_days=14,
                exception_count=1,
                sex=None,
                ibw_kg=None,
                dosing_weight_kg=None,
                weight_basis="unknown",
                g_per_kg=None,
                max_daily_g_per_kg=None,
            ),
            cycle("P001", 1, 0, date(2024, 11, 30), in_period=False, cycle_number=0),
        ]
    )
    findings = findings_frame(
        [
            finding(
                "CYCLE_INTERVAL_LONG",
                "low",
                "P001",
                1,
                3,
                date(2025, 3, 24),
                observed=42.0,
                limit=35.0,
                unit="days",
                message="Cycle 3 started 42 days after cycle 2 (limit 35 days).",
                admin_ids=["P001-3-a", "P001-3-b"],
            ),
            finding(
                "DOSE_ABOVE_MAX",
                "high",
                "P002",
                1,
                1,
                date(2025, 2, 3),
                observed=2.807,
                limit=2.1,
                unit="g/kg",
                excess_g=40.3,
                message="Cycle total 160.0 g = 2.81 g/kg of 57.0 kg ideal body weight (limit 2.10 g/kg).",
                admin_ids=["P002-1-a", "P002-1-b"],
            ),
            finding(
                "IGA_NOT_SCREENED",
                "high",
                "P002",
                1,
                1,
                date(2025, 2, 3),
                message="No IgA result at or before the first administration of course P002-C1.",
                admin_ids=["P002-1-a"],
            ),
            finding(
                "DOSING_WEIGHT_UNKNOWN",
                "medium",
                "P003",
                1,
                1,
                date(2025, 3, 3),
                message="Sex missing: ideal body weight can't be computed.",
                admin_ids=["P003-1-a"],
            ),
            finding(
                "IGA_DEFICIENT_STANDARD_PRODUCT",
                "high",
                "P003",
                1,
                1,
                date(2025, 3, 3),
                observed=5.0,
                limit=7.0,
                unit="mg/dL",
                message="IgA <5.0 mg/dL (deficient below 7.0 mg/dL) but Privigen is not IgA-reduced.",
                admin_ids=["P003-1-a", "P003-1-b"],
            ),
            finding(
                "CYCLE_INTERVAL_SHORT",
                "medium",
                "P003",
                1,
                2,
                date(2025, 3, 17),
                observed=14.0,
                limit=21.0,
                unit="days",
                message="Cycle 2 started 14 days after cycle 1 (minimum 21 days).",
                admin_ids=["P003-2-a", "P003-2-b"],
            ),
        ]
    )
    rejected = pl.concat(
        [
            rejected_frame(
                [
                    {
                        "source_file": "infusions.csv",
                        "source_row": 7,
                        "reason": "dose must be > 0",
                        "admin_id": "A7",
                        "patient_id": "P009",
                        "dose": "-1",
                        "dose_unit": "g",
                        "indication": "=cmd()",
                    },
                    {
                        "source_file": "infusions.csv",
                        "source_row": 3,
                        "reason": "unknown product '@SUM(A1)'",
                        "admin_id": "+1",
                        "patient_id": "P010",
                        "dose": "35",
                        "dose_unit": "g",
                        "indication": "M33.10",
                    },
                ],
                ["admin_id", "patient_id", "dose", "dose_unit", "indication"],
            ),
            rejected_frame(
                [
                    {
                        "source_file": "labs.csv",
                        "source_row": 5,
                        "reason": "unparsable date",
                        "patient_id": "P001",
                        "collected_at": "\x07bell",
                        "test": "IgA",
                        "value": "#N/A",
                    },
                ],
                ["patient_id", "collected_at", "test", "value"],
            ),
        ],
        how="diagonal",
    )
    out_of_scope = infusions_frame(
        [
            infusion(12, "A12", "P020", "M05.79 Rheumatoid arthritis"),
            infusion(4, "A4", "P021", "G61.0 Guillain-Barre syndrome", dose_g=40.0, sex="F", site=None),
        ]
    )
    return ReportData(
        findings=findings,
        cycles=cycles,
        rejected=rejected,
        out_of_scope=out_of_scope,
        summary=summary_for(findings, cycles, guideline),
        guideline=guideline,
        generated_at=GENERATED_AT,
    )
