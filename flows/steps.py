"""The audit's steps at the edge: read, validate, audit, write. No Prefect here.

The Prefect flow (``flows.audit_flow``) wraps each step in a thin task; tests and the
benchmark can call ``run_pipeline`` directly to skip Prefect's start-up cost.
Nothing here logs or raises a patient identifier: errors name files, lines and columns.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import polars as pl

from audit import frames
from audit.engine import AuditResult, assemble_result, build_cycle_table, evaluate_rules, split_scope
from audit.guideline import Guideline
from audit.pseudonym import pseudonymize_column
from audit.summary import build_summary
from report.model import DEFAULT_MAX_DETAIL_ROWS
from validators.guideline_source import guideline_sha256, load_guideline
from validators.infusions import validate_infusions
from validators.io import Loaded, read_mapping, read_table
from validators.labs import validate_labs
from validators.reviews import validate_reviews

PSEUDONYM_KEY_ENV = "IVIG_AUDIT_PSEUDONYM_KEY"

#: Output file names (CONTRACT.md), plus the out-of-scope listing.
REPORT_FILES = {
    "workbook": "ivig_audit_report.xlsx",
    "exceptions": "exceptions.csv",
    "cycles": "cycles.csv",
    "rejected": "rejected_rows.csv",
    "out_of_scope": "out_of_scope_rows.csv",
    "summary": "summary.json",
}


class ConfigError(Exception):
    """The run's settings can't be used (a missing key, a bad period, ...). One clear line."""


def tool_version() -> str:
    try:
        return version("ivig-audit")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; paths and plain values only (safe to show in Prefect's UI)."""

    infusions: Path
    out_dir: Path
    labs: Path | None = None
    reviews: Path | None = None
    mapping: Path | None = None
    guideline: str = "mayo-2013"
    period_start: date | None = None
    period_end: date | None = None
    pseudonymize: bool = False
    price_per_g: float | None = None
    max_detail_rows: int = DEFAULT_MAX_DETAIL_ROWS
    generated_at: datetime = field(default_factory=lambda: datetime.now().replace(microsecond=0))

    def check(self) -> None:
        if self.period_start and self.period_end and self.period_start > self.period_end:
            raise ConfigError(f"--period-start {self.period_start} is after --period-end {self.period_end}")
        if self.max_detail_rows < 1:
            raise ConfigError("max_detail_rows must be at least 1")
        if self.price_per_g is not None and self.price_per_g < 0:
            raise ConfigError("--price-per-gram must not be negative")
        if self.pseudonymize and not os.environ.get(PSEUDONYM_KEY_ENV):
            raise ConfigError(f"--pseudonymize needs a key in the environment variable {PSEUDONYM_KEY_ENV}")


@dataclass(frozen=True)
class Inputs:
    """Validated inputs of one run (``audit`` releases ``infusions.frame`` once it has split it)."""

    guideline: Guideline
    guideline_sha256: str
    infusions: Loaded
    labs: Loaded | None
    reviews: Loaded | None
    files: list[dict[str, Any]]


def peak_rss_mib() -> float | None:
    """This process's peak resident memory so far, in MiB (None where the OS can't say)."""
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux (bytes on macOS)
    return round(kib / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


class Timer:
    """Wall-clock seconds per step, and the process's peak memory when each step (last) ended.

    Both go into summary.json (``timings_s``, ``peak_rss_mib``): the peak only grows, so
    the first step where it jumps is the one that needed the memory.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_rss_mib: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - start, 4)
            peak = peak_rss_mib()
            if peak is not None:
                self.peak_rss_mib[name] = peak


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _pseudonymize(loaded: Loaded, key: bytes) -> Loaded:
    return Loaded(
        frame=pseudonymize_column(loaded.frame, key),
        rejected=pseudonymize_column(loaded.rejected, key),
        rows_read=loaded.rows_read,
        rows_duplicate=loaded.rows_duplicate,
        rows_rejected=loaded.rows_rejected,
        rows_ignored=loaded.rows_ignored,
    )


def load_inputs(cfg: RunConfig, timer: Timer | None = None) -> Inputs:
    """Read and validate every input. Raises InputError / GuidelineError / ConfigError."""
    timer = timer or Timer()
    cfg.check()
    guideline = load_guideline(cfg.guideline)
    mapping = read_mapping(cfg.mapping) if cfg.mapping else None
    now = cfg.generated_at

    def read(path: Path) -> pl.DataFrame:
        with timer.step("read"):
            return read_table(path, mapping)

    # One file at a time (read, then validate), so the first unusable file is the one reported.
    table = read(cfg.infusions)
    with timer.step("validate"):
        infusions = validate_infusions(table, cfg.infusions, guideline, now=now)
    labs = reviews = None
    if cfg.labs:
        table = read(cfg.labs)
        with timer.step("validate"):
            labs = validate_labs(table, cfg.labs, now=now)
    if cfg.reviews:
        table = read(cfg.reviews)
        with timer.step("validate"):
            reviews = validate_reviews(table, cfg.reviews, now=now)
    del table
    if cfg.pseudonymize:
        key = os.environ[PSEUDONYM_KEY_ENV].encode("utf-8")
        infusions = _pseudonymize(infusions, key)
        labs = _pseudonymize(labs, key) if labs else None
        reviews = _pseudonymize(reviews, key) if reviews else None
    with timer.step("hash_inputs"):
        files = [
            {"kind": kind, "file": str(path), "sha256": sha256_of(path), "rows_read": loaded.rows_read}
            for kind, path, loaded in (
                ("infusions", cfg.infusions, infusions),
                ("labs", cfg.labs, labs),
                ("reviews", cfg.reviews, reviews),
            )
            if path is not None and loaded is not None
        ]
        if cfg.mapping:
            files.append({"kind": "mapping", "file": str(cfg.mapping), "sha256": sha256_of(cfg.mapping)})
    return Inputs(
        guideline=guideline,
        guideline_sha256=guideline_sha256(cfg.guideline),
        infusions=infusions,
        labs=labs,
        reviews=reviews,
        files=files,
    )


def release(frame: pl.DataFrame) -> None:
    """Empty ``frame`` in place (every column dropped), so its memory can go before the next copy."""
    for name in frame.columns:
        frame.drop_in_place(name)


def audit(inputs: Inputs, cfg: RunConfig, timer: Timer | None = None) -> AuditResult:
    """Run the pure audit on validated inputs.

    Consumes ``inputs.infusions.frame``: once split into the in-scope and out-of-scope
    rows it is released (left empty), since nothing reads it again and at 10M rows it is
    about 1.6 GB held through the sort that follows. Counts stay in ``inputs.infusions``.
    """
    timer = timer or Timer()
    labs = inputs.labs.frame if inputs.labs else frames.empty(frames.LABS)
    reviews = inputs.reviews.frame if inputs.reviews else frames.empty(frames.REVIEWS)
    # run_audit's steps one by one, to time grouping and rules apart.
    with timer.step("group"):
        admins, out_of_scope = split_scope(inputs.infusions.frame, inputs.guideline)
        release(inputs.infusions.frame)
        cycles, days = build_cycle_table(
            admins, labs, reviews, inputs.guideline, period_start=cfg.period_start, period_end=cfg.period_end
        )
    with timer.step("rules"):
        findings = evaluate_rules(cycles, days, inputs.guideline)
        return assemble_result(admins, out_of_scope, cycles, findings)


def rejected_rows(inputs: Inputs) -> pl.DataFrame:
    """Every rejected row of every input, in file then line order."""
    parts = [x.rejected for x in (inputs.infusions, inputs.labs, inputs.reviews) if x is not None]
    parts = [p for p in parts if p.height > 0] or [frames.empty(frames.REJECTED_KEYS)]
    return pl.concat(parts, how="diagonal_relaxed").sort("source_file", "source_row")


def _other_counts(loaded: Loaded | None, *, ignored_key: str | None = None) -> dict[str, int] | None:
    if loaded is None:
        return None
    counts = {
        "rows_read": loaded.rows_read,
        "rows_used": loaded.frame.height,
        "rows_rejected": loaded.rows_rejected,
        "rows_duplicate": loaded.rows_duplicate,
    }
    if ignored_key:
        counts[ignored_key] = loaded.rows_ignored
    return counts


def summarize(inputs: Inputs, result: AuditResult, cfg: RunConfig, timings: dict[str, float]) -> dict[str, Any]:
    reconciliation = {
        "rows_read": inputs.infusions.rows_read,
        "rows_audited": result.counts["rows_audited"],
        "rows_out_of_scope": result.counts["rows_out_of_scope"],
        "rows_rejected": inputs.infusions.rows_rejected,
        "rows_duplicate": inputs.infusions.rows_duplicate,
    }
    return build_summary(
        result=result,
        guideline=inputs.guideline,
        guideline_sha256=inputs.guideline_sha256,
        inputs=inputs.files,
        reconciliation=reconciliation,
        labs=_other_counts(inputs.labs, ignored_key="rows_ignored_other_tests"),
        reviews=_other_counts(inputs.reviews),
        period_start=cfg.period_start,
        period_end=cfg.period_end,
        generated_at=cfg.generated_at,
        pseudonymized=cfg.pseudonymize,
        tool_version=tool_version(),
        price_per_g=cfg.price_per_g,
        timings_s=timings,
    )


def write_reports(
    inputs: Inputs, result: AuditResult, summary: dict[str, Any], cfg: RunConfig, timer: Timer | None = None
) -> dict[str, str]:
    """Write every output file into ``cfg.out_dir``; returns kind -> path."""
    from report.csv_json import (
        write_cycles_csv,
        write_exceptions_csv,
        write_out_of_scope_csv,
        write_rejected_csv,
        write_summary_json,
    )
    from report.model import ReportData
    from report.workbook import write_workbook

    timer = timer or Timer()
    out = cfg.out_dir
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{out}: can't create the output folder ({exc.strerror})") from None
    paths = {kind: out / name for kind, name in REPORT_FILES.items()}
    rejected = rejected_rows(inputs)
    with timer.step("write_csv"):
        write_exceptions_csv(result.findings, paths["exceptions"])
        write_cycles_csv(result.cycles, paths["cycles"])
        write_rejected_csv(rejected, paths["rejected"])
        write_out_of_scope_csv(result.out_of_scope, paths["out_of_scope"])
    with timer.step("write_workbook"):
        stats = write_workbook(
            ReportData(
                findings=result.findings,
                cycles=result.cycles,
                rejected=rejected,
                out_of_scope=result.out_of_scope,
                summary=summary,
                guideline=inputs.guideline,
                generated_at=cfg.generated_at,
            ),
            paths["workbook"],
            max_detail_rows=cfg.max_detail_rows,
        )
    summary["workbook"] = stats.as_dict()
    summary["timings_s"] = dict(timer.seconds)
    summary["peak_rss_mib"] = dict(timer.peak_rss_mib)
    write_summary_json(summary, paths["summary"])
    return {kind: str(path) for kind, path in paths.items()}


def run_pipeline(cfg: RunConfig) -> dict[str, Any]:
    """The whole audit without Prefect: returns the summary written to summary.json."""
    timer = Timer()
    inputs = load_inputs(cfg, timer)
    result = audit(inputs, cfg, timer)
    summary = summarize(inputs, result, cfg, timer.seconds)
    write_reports(inputs, result, summary, cfg, timer)
    return summary
