"""The audit split by patient and run on Dask through Prefect (prefect-dask).

The audit is independent per patient: every cycle, course, IgA result and review
belongs to one ``patient_id``. So the validated inputs are split into N partitions by a
*stable* hash of ``patient_id`` (BLAKE2b of the UTF-8 text, the same in every process,
machine and library version; polars' own ``hash`` is not promised stable), each
partition is audited by ``audit.engine.run_audit`` as a Prefect task on a
``DaskTaskRunner``, and the parts are put back together and sorted exactly as the
single-process run sorts them. The result is identical to ``run_audit`` on the whole
(``tests/flows/test_partitioned.py``).

By default the runner starts a ``distributed.LocalCluster`` on this machine (one
single-threaded worker process per core); give ``address`` (``tcp://host:8786``) to
use an existing Dask cluster instead. See docs/scale.md for when it pays.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import polars as pl

from audit import frames
from audit.engine import AuditResult, run_audit, sort_findings
from audit.guideline import Guideline

if TYPE_CHECKING:
    from flows.steps import Inputs, RunConfig, Timer

_PART = "_partition"


def partition_of(patient_ids: pl.Series, partitions: int) -> pl.DataFrame:
    """``(patient_id, _partition)`` for each distinct id: a stable hash modulo ``partitions``.

    Python runs once per distinct patient, not per row (patients are few next to rows).
    """
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    ids = patient_ids.drop_nulls().unique().sort()
    numbers = [
        int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big") % partitions
        for text in ids.to_list()
    ]
    return pl.DataFrame({"patient_id": ids, _PART: pl.Series(numbers, dtype=pl.UInt32)})


@dataclass(frozen=True)
class Part:
    """One partition's share of the validated inputs."""

    number: int
    infusions: pl.DataFrame
    labs: pl.DataFrame
    reviews: pl.DataFrame


def split_inputs(infusions: pl.DataFrame, labs: pl.DataFrame, reviews: pl.DataFrame, partitions: int) -> list[Part]:
    """Split the three tables by patient; partitions with no infusion rows are left out."""
    keys = partition_of(infusions.get_column("patient_id"), partitions)

    def by_part(table: pl.DataFrame) -> dict[int, pl.DataFrame]:
        tagged = table.join(keys, on="patient_id", how="inner", maintain_order="left")
        return {int(k[0]): part.drop(_PART) for k, part in tagged.partition_by(_PART, as_dict=True).items()}

    inf, lab, rev = by_part(infusions), by_part(labs), by_part(reviews)
    return [
        Part(
            number=n,
            infusions=inf[n],
            labs=lab.get(n, labs.clear()),
            reviews=rev.get(n, reviews.clear()),
        )
        for n in sorted(inf)
    ]


def merge_results(parts: list[AuditResult]) -> AuditResult:
    """Put per-partition results together, sorted as ``run_audit`` sorts them.

    Patients (so courses and cycles) never span partitions, so the counts add up.
    """
    if not parts:
        return AuditResult(
            findings=frames.empty(frames.FINDINGS),
            cycles=frames.empty(frames.CYCLES),
            out_of_scope=frames.empty(frames.INFUSIONS),
            counts=dict.fromkeys(
                ("rows_audited", "rows_out_of_scope", "patients", "courses", "cycles", "cycles_all_history"), 0
            ),
        )
    findings = sort_findings(pl.concat([p.findings for p in parts], how="vertical"))
    cycles = pl.concat([p.cycles for p in parts], how="vertical").sort("patient_id", "cycle_start")
    out_of_scope = pl.concat([p.out_of_scope for p in parts], how="vertical").sort("source_file", "source_row")
    counts = {key: sum(p.counts[key] for p in parts) for key in parts[0].counts}
    return AuditResult(findings=findings, cycles=cycles, out_of_scope=out_of_scope, counts=counts)


def default_workers() -> int:
    """One worker process per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def task_runner(address: str | None = None, workers: int | None = None, *, processes: bool = False) -> Any:
    """A ``DaskTaskRunner``: on the cluster at ``address``, or on a new LocalCluster.

    The LocalCluster runs ``workers`` single-threaded workers as threads of this process by
    default: polars releases the GIL, and worker processes cost a spawn, pickled frames and,
    from a console script, multiprocessing's bootstrapping trap ("Nanny failed to start").
    ``processes=True`` gives worker processes.
    """
    from prefect_dask.task_runners import DaskTaskRunner

    if address:
        return DaskTaskRunner(address=address)
    n = workers or default_workers()
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={"n_workers": n, "threads_per_worker": 1, "processes": processes, "dashboard_address": None},
    )


def _audit_part(part: Part, guideline: Guideline, period_start: date | None, period_end: date | None) -> AuditResult:
    return run_audit(
        part.infusions, part.labs, part.reviews, guideline, period_start=period_start, period_end=period_end
    )


def run_audit_partitioned(
    infusions: pl.DataFrame,
    labs: pl.DataFrame,
    reviews: pl.DataFrame,
    guideline: Guideline,
    *,
    period_start: date | None = None,
    period_end: date | None = None,
    partitions: int | None = None,
    address: str | None = None,
    workers: int | None = None,
    processes: bool = False,
) -> AuditResult:
    """``run_audit``, partitioned by patient and run as Prefect tasks on Dask; same result.

    ``partitions`` defaults to twice the worker count (so a slow partition doesn't
    leave a worker idle for long). Inside a running flow this runs as a subflow.
    """
    from prefect import flow, task
    from prefect.cache_policies import NO_CACHE

    n_workers = workers or default_workers()
    parts = split_inputs(infusions, labs, reviews, partitions or 2 * n_workers)

    # Frames travel to the workers pickled (polars uses its IPC format); caching off:
    # hashing a large frame costs seconds and the inputs are never the same twice.
    audit_part = task(name="audit-partition", cache_policy=NO_CACHE)(_audit_part)

    @flow(
        name="ivig-audit-partitioned",
        task_runner=task_runner(address, n_workers, processes=processes),
        validate_parameters=False,
    )
    def partitioned_audit() -> AuditResult:
        futures = [
            audit_part.with_options(task_run_name=f"audit-partition-{p.number}").submit(
                p, guideline, period_start, period_end
            )
            for p in parts
        ]
        return merge_results([f.result() for f in futures])

    result: AuditResult = partitioned_audit()
    return result


def audit_partitioned(
    inputs: Inputs,
    cfg: RunConfig,
    timer: Timer | None = None,
    *,
    partitions: int | None = None,
    address: str | None = None,
) -> AuditResult:
    """Drop-in for ``flows.steps.audit`` that runs the partitioned audit (timed as ``audit``)."""
    from flows.steps import Timer as _Timer

    timer = timer or _Timer()
    with timer.step("audit"):
        return run_audit_partitioned(
            inputs.infusions.frame,
            inputs.labs.frame if inputs.labs else frames.empty(frames.LABS),
            inputs.reviews.frame if inputs.reviews else frames.empty(frames.REVIEWS),
            inputs.guideline,
            period_start=cfg.period_start,
            period_end=cfg.period_end,
            partitions=partitions,
            address=address,
        )
