"""The Prefect flow: thin tasks around ``flows.steps``.

Parameters are paths and plain values (Prefect stores and shows them); frames travel
between tasks in memory with caching off (hashing a large frame costs seconds). Log
lines carry counts and timings only, never an identifier or a cell value.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

from prefect import Task, flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.states import Completed, Failed

from audit.engine import AuditResult
from audit.guideline import GuidelineError
from flows import steps
from flows.schedule import is_transient_fs_error
from report.model import DEFAULT_MAX_DETAIL_ROWS
from validators.errors import InputError

#: Failure messages that start with these are the user's to fix (CLI exit status 2).
BAD_INPUT = "Bad input: "
BAD_CONFIG = "Bad configuration: "
#: Waits (seconds) before the retries of a step that hit a transient file-system error.
RETRY_DELAYS_S = [5, 20, 60]


def retry_on_transient_fs_error(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry a step only when it failed on a file-system error that may pass (busy, locked, I/O)."""
    exc = state.data if isinstance(state.data, BaseException) else None
    if exc is None:
        try:
            exc = state.result(raise_on_failure=False)  # the exception, when there is one
        except Exception:  # an unreadable result is no reason to retry
            return False
    return is_transient_fs_error(exc if isinstance(exc, BaseException) else None)


#: Task options shared by every step: no caching (frames are large), retries for transient I/O only.
STEP_OPTIONS: dict[str, Any] = {
    "cache_policy": NO_CACHE,
    "retries": len(RETRY_DELAYS_S),
    "retry_delay_seconds": RETRY_DELAYS_S,
    "retry_condition_fn": retry_on_transient_fs_error,
}


@task(name="read-and-validate", **STEP_OPTIONS)
def load_task(cfg: steps.RunConfig, timer: steps.Timer) -> steps.Inputs | str:
    """Read and validate the inputs; a user-fixable problem comes back as its message."""
    logger = get_run_logger()
    try:
        inputs = steps.load_inputs(cfg, timer)
    except InputError as exc:
        return BAD_INPUT + str(exc)
    except (GuidelineError, steps.ConfigError) as exc:
        return BAD_CONFIG + str(exc)
    inf = inputs.infusions
    logger.info(
        "infusions: %d rows read, %d usable, %d rejected, %d duplicate (%.2f s)",
        inf.rows_read,
        inf.frame.height,
        inf.rows_rejected,
        inf.rows_duplicate,
        timer.seconds.get("read", 0.0) + timer.seconds.get("validate", 0.0),
    )
    for kind, loaded in (("labs", inputs.labs), ("reviews", inputs.reviews)):
        if loaded is not None:
            logger.info(
                "%s: %d rows read, %d usable, %d rejected, %d ignored",
                kind,
                loaded.rows_read,
                loaded.frame.height,
                loaded.rows_rejected,
                loaded.rows_ignored,
            )
    return inputs


@task(name="audit", cache_policy=NO_CACHE)  # pure computation: nothing to retry
def audit_task(inputs: steps.Inputs, cfg: steps.RunConfig, timer: steps.Timer) -> AuditResult:
    result = steps.audit(inputs, cfg, timer)
    get_run_logger().info(
        "audited %d rows (%d out of scope): %d cycles in period, %d exceptions (%.2f s)",
        result.counts["rows_audited"],
        result.counts["rows_out_of_scope"],
        result.counts["cycles"],
        result.findings.height,
        timer.seconds.get("group", 0.0) + timer.seconds.get("rules", 0.0),
    )
    return result


@task(name="write-reports", **STEP_OPTIONS)
def write_task(
    inputs: steps.Inputs,
    result: AuditResult,
    cfg: steps.RunConfig,
    timer: steps.Timer,
    history: dict[str, Any] | None = None,
) -> dict[str, Any] | str:
    """Write every report into ``cfg.out_dir``; ``history`` (counts only) goes into the summary."""
    summary = steps.summarize(inputs, result, cfg, timer.seconds)
    if history is not None:
        summary["history"] = history
    try:
        steps.write_reports(inputs, result, summary, cfg, timer)
    except steps.ConfigError as exc:
        return BAD_CONFIG + str(exc)
    get_run_logger().info(
        "reports written to %s (%.2f s)",
        cfg.out_dir,
        timer.seconds.get("write_csv", 0.0) + timer.seconds.get("write_workbook", 0.0),
    )
    return summary


@flow(name="ivig-audit", log_prints=False, validate_parameters=True)
def audit_flow(
    infusions: str,
    out_dir: str,
    labs: str | None = None,
    reviews: str | None = None,
    mapping: str | None = None,
    guideline: str = "mayo-2013",
    period_start: date | None = None,
    period_end: date | None = None,
    pseudonymize: bool = False,
    price_per_g: float | None = None,
    max_detail_rows: int = DEFAULT_MAX_DETAIL_ROWS,
    generated_at: datetime | None = None,
    partitions: int | None = None,
    dask_address: str | None = None,
) -> State[Any]:
    """Audit IVIG administrations for dermatomyositis against a guideline profile.

    With ``partitions`` or ``dask_address`` the audit step runs per patient partition on
    Dask (a local cluster, or the scheduler at ``dask_address``); results are identical.
    """
    cfg = steps.RunConfig(
        infusions=Path(infusions),
        out_dir=Path(out_dir),
        labs=Path(labs) if labs else None,
        reviews=Path(reviews) if reviews else None,
        mapping=Path(mapping) if mapping else None,
        guideline=guideline,
        period_start=period_start,
        period_end=period_end,
        pseudonymize=pseudonymize,
        price_per_g=price_per_g,
        max_detail_rows=max_detail_rows,
        generated_at=generated_at or datetime.now().replace(microsecond=0),
    )
    timer = steps.Timer()
    loaded = load_task(cfg, timer)
    if isinstance(loaded, str):
        return Failed(message=loaded)
    if partitions or dask_address:
        from flows.partitioned import audit_partitioned

        result = audit_partitioned(loaded, cfg, timer, partitions=partitions, address=dask_address)
    else:
        result = audit_task(loaded, cfg, timer)
    summary = write_task(loaded, result, cfg, timer)
    if isinstance(summary, str):
        return Failed(message=summary)
    return Completed(message="audit complete", data=summary)
