"""The scheduled audit: a drop folder in, a dated run folder out, with history and artifacts.

``scheduled_audit_flow`` is what a deployment runs (``ivig-audit serve`` or ``prefect
deploy`` with prefect.yaml). It picks the newest export of each kind from the drop folder,
audits the period (default: the previous calendar month), and builds
``<output_root>/<run date>_<period>_<HHMMSS>-<run id>/`` in a hidden staging folder that is
renamed into place only when every file is written. It reuses the tasks of ``audit_flow``.

Nothing shown by Prefect names a patient: parameters are paths and options, the run name
is ``ivig-audit <period> (scheduled)``, logs and artifacts carry counts only.

No ``from __future__ import annotations`` here: Prefect builds the parameter model from the
flow's annotations when a runner loads the flow from its entrypoint, and needs real types.
"""

import dataclasses
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed

from audit.engine import AuditResult
from flows import history as run_history
from flows import schedule, steps
from flows.audit_flow import BAD_INPUT, STEP_OPTIONS, audit_task, load_task, write_task
from report.model import DEFAULT_MAX_DETAIL_ROWS

FLOW_NAME = "ivig-audit-scheduled"
ARTIFACT_COUNTS = "ivig-audit-counts"
ARTIFACT_REPORT = "ivig-audit-report"
ARTIFACT_LINK = "ivig-audit-report-folder"


def _parameter_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value:
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            return None
    return None


def flow_run_name() -> str:
    """``ivig-audit 2026-10 (scheduled)``: the period only, never anything from the data."""
    params = runtime.flow_run.parameters or {}
    as_of = params.get("as_of")
    today = as_of.date() if isinstance(as_of, datetime) else (_parameter_date(as_of) or date.today())
    start, end = schedule.resolve_period(
        today, _parameter_date(params.get("period_start")), _parameter_date(params.get("period_end"))
    )
    return f"ivig-audit {schedule.period_label(start, end)} (scheduled)"


@task(name="resolve-drop-folder", **STEP_OPTIONS)
def resolve_task(drop_folder: Path, settle_seconds: float) -> schedule.DropSelection:
    """Pick the newest export of each kind; a file still being written is retried later."""
    started = time.perf_counter()
    selection = schedule.resolve_drop_folder(drop_folder, settle_seconds=settle_seconds)
    logger = get_run_logger()
    for kind, path in selection.files.items():
        logger.info("using %s export %s (modified %s)", kind, path.name, selection.modified[kind])
    logger.info("drop folder resolved: %d files (%.2f s)", len(selection.files), time.perf_counter() - started)
    return selection


@task(name="prepare-run-folder", **STEP_OPTIONS)
def prepare_task(final: Path) -> Path:
    return schedule.prepare_staging(final)


@task(name="compare-with-previous-run", cache_policy=NO_CACHE)
def history_task(
    result: AuditResult,
    output_root: Path,
    run_name: str,
    started_at: datetime,
    period: tuple[date, date],
    pseudonymized: bool,
    trend_runs: int,
) -> tuple[dict[str, Any], Any]:
    started = time.perf_counter()
    block, changes = run_history.build_history(
        result.findings,
        cycles_audited=int(result.counts["cycles"]),
        output_root=output_root,
        run_name=run_name,
        started_at=started_at,
        period_start=period[0],
        period_end=period[1],
        pseudonymized=pseudonymized,
        trend_runs=trend_runs,
    )
    since = block["since_previous"]
    logger = get_run_logger()
    if since is None:
        logger.info("no comparison with a previous run: %s", block["note"])
    else:
        logger.info(
            "since the previous run: %d new, %d resolved, %d still open, %d not re-checked (%.2f s)",
            since["new"],
            since["resolved"],
            since["still_open"],
            since["not_rechecked"],
            time.perf_counter() - started,
        )
    return block, changes


@task(name="publish-run-folder", **STEP_OPTIONS)
def publish_task(changes: Any, staging: Path, final: Path) -> Path:
    """Write the change listing, then rename the finished folder into place."""
    started = time.perf_counter()
    run_history.write_changes(changes, staging)
    schedule.publish(staging, final)
    get_run_logger().info(
        "run folder published: %s, %d change rows (%.2f s)", final, changes.height, time.perf_counter() - started
    )
    return final


def artifact_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Counts per rule (with new/resolved since the previous run) and the reconciliation; no identifiers."""
    by_rule = summary.get("exceptions", {}).get("by_rule", {})
    since = (summary.get("history") or {}).get("since_previous") or {}
    since_by_rule = since.get("by_rule", {})
    compliance = summary.get("compliance_by_rule", {})
    rows: list[dict[str, Any]] = [
        {
            "section": "exceptions by rule",
            "item": code,
            "count": int(count),
            "new_since_previous": since_by_rule.get(code, {}).get("new"),
            "resolved_since_previous": since_by_rule.get(code, {}).get("resolved"),
            "compliance_pct": compliance.get(code),
        }
        for code, count in by_rule.items()
    ]
    rows.append(
        {
            "section": "exceptions by rule",
            "item": "total",
            "count": int(summary.get("exceptions", {}).get("total", 0)),
            "new_since_previous": since.get("new"),
            "resolved_since_previous": since.get("resolved"),
            "compliance_pct": (summary.get("history") or {}).get("run", {}).get("compliance_pct"),
        }
    )
    for key, value in summary.get("reconciliation", {}).items():
        rows.append(
            {
                "section": "reconciliation (infusions)",
                "item": key,
                "count": value if isinstance(value, int) and not isinstance(value, bool) else str(value),
                "new_since_previous": None,
                "resolved_since_previous": None,
                "compliance_pct": None,
            }
        )
    return rows


def report_markdown(summary: dict[str, Any], final: Path, used: dict[str, str]) -> str:
    """The report artifact: where the reports are, which exports were used, the headline counts."""
    period = summary.get("period", {})
    exc = summary.get("exceptions", {})
    sev = exc.get("by_severity", {})
    rec = summary.get("reconciliation", {})
    hist = summary.get("history") or {}
    since = hist.get("since_previous")
    lines = [
        f"# IVIG audit {period.get('start')} to {period.get('end')}",
        "",
        f"Reports: [{final}]({final.as_uri()}) (workbook `{steps.REPORT_FILES['workbook']}`)",
        "",
        f"- Exceptions: **{exc.get('total')}** (high {sev.get('high')}, medium {sev.get('medium')}, "
        f"low {sev.get('low')})",
        f"- Rows read {rec.get('rows_read')}: audited {rec.get('rows_audited')}, out of scope "
        f"{rec.get('rows_out_of_scope')}, rejected {rec.get('rows_rejected')}, duplicate "
        f"{rec.get('rows_duplicate')} (balanced: {rec.get('balanced')})",
        f"- Compliance (cycles without an exception): {hist.get('run', {}).get('compliance_pct')} %",
    ]
    if since is None:
        lines.append(f"- Since the previous run: no comparison ({hist.get('note')})")
    else:
        lines.append(
            f"- Since the previous run: {since['new']} new, {since['resolved']} resolved, "
            f"{since['still_open']} still open"
        )
    lines += ["", "Exports used:", ""]
    lines += [f"- {kind}: `{name}`" for kind, name in used.items()]
    return "\n".join(lines) + "\n"


@task(name="create-artifacts", cache_policy=NO_CACHE)
def artifacts_task(summary: dict[str, Any], final: Path, used: dict[str, str]) -> None:
    period = summary.get("period", {})
    create_table_artifact(
        artifact_rows(summary),
        key=ARTIFACT_COUNTS,
        description=f"Exceptions per rule and reconciliation, {period.get('start')} to {period.get('end')}",
    )
    create_markdown_artifact(report_markdown(summary, final, used), key=ARTIFACT_REPORT, description="IVIG audit")
    create_link_artifact(final.as_uri(), link_text=str(final), key=ARTIFACT_LINK, description="Report folder")


@flow(name=FLOW_NAME, flow_run_name=flow_run_name, log_prints=False, validate_parameters=True)
def scheduled_audit_flow(
    drop_folder: str,
    output_root: str,
    guideline: str = "mayo-2013",
    period_start: date | None = None,
    period_end: date | None = None,
    pseudonymize: bool = False,
    price_per_g: float | None = None,
    max_detail_rows: int = DEFAULT_MAX_DETAIL_ROWS,
    trend_runs: int = run_history.DEFAULT_TREND_RUNS,
    settle_seconds: float = 60.0,
    as_of: datetime | None = None,
) -> State[Any]:
    """Audit the newest exports in a drop folder for a period (default: the previous month)."""
    logger = get_run_logger()
    started_at = datetime.now().replace(microsecond=0)
    now = as_of or started_at
    start, end = schedule.resolve_period(now.date(), period_start, period_end)
    if start > end:
        return Failed(message=f"{BAD_INPUT}period_start {start} is after period_end {end}")
    logger.info("audit period %s to %s", start, end)
    try:
        selection = resolve_task(Path(drop_folder), settle_seconds)
    except schedule.DropFolderError as exc:
        return Failed(message=BAD_INPUT + str(exc))
    root = Path(output_root)
    run_id = str(runtime.flow_run.id or "") or None
    final = root / schedule.run_folder_name(started_at, start, end, run_id)
    cfg = steps.RunConfig(
        infusions=selection.files["infusions"],
        out_dir=final,  # replaced by the staging folder below
        labs=selection.path("labs"),
        reviews=selection.path("reviews"),
        mapping=selection.path("mapping"),
        guideline=guideline,
        period_start=start,
        period_end=end,
        pseudonymize=pseudonymize,
        price_per_g=price_per_g,
        max_detail_rows=max_detail_rows,
        generated_at=now,
    )
    staging = prepare_task(final)
    published = False
    try:
        cfg = dataclasses.replace(cfg, out_dir=staging)
        timer = steps.Timer()
        loaded = load_task(cfg, timer)
        if isinstance(loaded, str):
            return Failed(message=loaded)
        result = audit_task(loaded, cfg, timer)
        block, changes = history_task(result, root, final.name, started_at, (start, end), pseudonymize, trend_runs)
        summary = write_task(loaded, result, cfg, timer, history=block)
        if isinstance(summary, str):
            return Failed(message=summary)
        publish_task(changes, staging, final)
        published = True
    finally:
        if not published:
            schedule.discard(staging)
    used = {kind: path.name for kind, path in selection.files.items()}
    artifacts_task(summary, final, used)
    logger.info("audit complete: %d exceptions, reports in %s", summary["exceptions"]["total"], final)
    return Completed(message=f"reports in {final}", data=summary)
