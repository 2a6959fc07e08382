"""The run summary (summary.json): counts only, never a patient identifier."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import polars as pl

from audit.engine import AuditResult
from audit.guideline import RULE_CODES, SEVERITY_ORDER, Guideline

TOOL_NAME = "ivig-audit"


def compliance_by_rule(findings: pl.DataFrame, cycles_audited: int) -> dict[str, float | None]:
    """Per rule: % of audited cycles without that exception (None with no cycles)."""
    per_rule = dict(
        findings.select("rule_code", "course_id", "cycle_number").unique().group_by("rule_code").len().iter_rows()
    )
    if cycles_audited == 0:
        return dict.fromkeys(RULE_CODES)
    return {code: round(100.0 * (1 - per_rule.get(code, 0) / cycles_audited), 2) for code in RULE_CODES}


def build_summary(
    *,
    result: AuditResult,
    guideline: Guideline,
    guideline_sha256: str,
    inputs: list[dict[str, Any]],
    reconciliation: dict[str, int],
    labs: dict[str, int] | None,
    reviews: dict[str, int] | None,
    period_start: date | None,
    period_end: date | None,
    generated_at: datetime,
    pseudonymized: bool,
    tool_version: str,
    price_per_g: float | None = None,
    timings_s: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Assemble the JSON-ready summary. ``reconciliation`` must already balance."""
    findings = result.findings
    by_rule = dict(findings.group_by("rule_code").len().iter_rows())
    by_severity = dict(findings.group_by("severity").len().iter_rows())
    excess = findings.get_column("excess_g").drop_nulls().sum()
    price = price_per_g if price_per_g is not None else guideline.cost.price_per_g
    rec = dict(reconciliation)
    rec["balanced"] = rec["rows_read"] == (
        rec["rows_audited"] + rec["rows_out_of_scope"] + rec["rows_rejected"] + rec["rows_duplicate"]
    )
    return {
        "tool": {"name": TOOL_NAME, "version": tool_version},
        "generated_at": generated_at.isoformat(timespec="seconds"),
        "period": {
            "start": period_start.isoformat() if period_start else None,
            "end": period_end.isoformat() if period_end else None,
        },
        "guideline": {
            "name": guideline.profile.name,
            "version": guideline.profile.version,
            "title": guideline.profile.title,
            "sha256": guideline_sha256,
        },
        "inputs": inputs,
        "reconciliation": rec,
        "labs": labs,
        "reviews": reviews,
        "audited": {
            "patients": result.counts["patients"],
            "courses": result.counts["courses"],
            "cycles": result.counts["cycles"],
        },
        "exceptions": {
            "total": findings.height,
            "by_rule": {code: int(by_rule.get(code, 0)) for code in RULE_CODES},
            "by_severity": {sev: int(by_severity.get(sev, 0)) for sev in SEVERITY_ORDER},
        },
        "compliance_by_rule": compliance_by_rule(findings, result.counts["cycles"]),
        "excess_g_total": round(float(excess), 3),
        "excess_cost": round(float(excess) * price, 2) if price is not None else None,
        "currency": guideline.cost.currency,
        "price_per_g": price,
        "pseudonymized": pseudonymized,
        "timings_s": dict(timings_s or {}),
    }
