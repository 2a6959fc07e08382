"""Benchmark: how long the workbook takes and how much memory it needs, by audit size.

Not a test. Synthetic findings and cycles (2 exceptions per cycle, every rule
and severity, realistic messages) of 10k, 100k and 500k exceptions are written
with the default detail-row cap and with the cap lifted to hold every row.
Each measurement runs in a fresh process, so its peak RSS is its own.

    .venv/bin/python -m bench.bench_workbook                     # prints the table
    .venv/bin/python -m bench.bench_workbook --update bench/WORKBOOK.md
    .venv/bin/python -m bench.bench_workbook --sizes 10000 --caps default --repeat 5

``--repeat N`` times N writes in the same process and reports the fastest
(a shared or busy machine only ever makes a write slower).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl

from audit.frames import CYCLES, FINDINGS, INFUSIONS, REJECTED_KEYS
from audit.guideline import RULE_CODES
from report.model import ReportData
from report.workbook import DEFAULT_MAX_DETAIL_ROWS, write_workbook
from validators.guideline_source import load_guideline

SIZES = (10_000, 100_000, 500_000)
START, END = "<!-- bench_workbook:start -->", "<!-- bench_workbook:end -->"
GENERATED_AT = datetime(2026, 11, 22, 3, 0)


def synthetic(n_findings: int) -> ReportData:
    """n_findings exceptions over n_findings / 2 cycles of 2-patient-month courses."""
    guideline = load_guideline()
    n_cycles = max(1, n_findings // 2)
    cycle_idx = pl.int_range(0, n_cycles, eager=True)
    patient = (cycle_idx // 6).cast(pl.String).str.zfill(7).map_elements(lambda s: f"P{s}", return_dtype=pl.String)
    number = (cycle_idx % 6) + 1
    start = pl.Series([date(2025, 1, 1) + timedelta(days=int(i % 330)) for i in range(n_cycles)], dtype=pl.Date)
    cycles = pl.DataFrame(
        {
            "patient_id": patient,
            "course_id": patient + "-C1",
            "cycle_number": number,
            "cycle_start": start,
            "cycle_end": start + timedelta(days=1),
            "first_admin_at": start.cast(pl.Datetime("us")) + timedelta(hours=9, minutes=30),
            "infusion_days": pl.Series([2] * n_cycles),
            "administrations": pl.Series([2] * n_cycles),
            "total_g": pl.Series([120.0 + (i % 7) * 5 for i in range(n_cycles)]),
            "actual_weight_kg": pl.Series([70.0 + (i % 30) for i in range(n_cycles)]),
            "height_cm": pl.Series([165.0] * n_cycles),
            "sex": pl.Series(["F", "M"] * (n_cycles // 2) + ["F"] * (n_cycles % 2)),
            "age_years": pl.Series([54] * n_cycles),
            "ibw_kg": pl.Series([57.0] * n_cycles),
            "dosing_weight_kg": pl.Series([57.0] * n_cycles),
            "weight_basis": pl.Series(["ibw"] * n_cycles),
            "g_per_kg": pl.Series([(120.0 + (i % 7) * 5) / 57.0 for i in range(n_cycles)]),
            "max_daily_g": pl.Series([60.0] * n_cycles),
            "max_daily_g_per_kg": pl.Series([60.0 / 57.0] * n_cycles),
            "max_gap_days": pl.Series([1] * n_cycles),
            "interval_days": pl.Series([None if n == 1 else 28 for n in number]),
            "products": pl.Series(["Privigen"] * n_cycles),
            "is_iga_reduced_only": pl.Series([False] * n_cycles),
            "iga_status": pl.Series(["normal"] * n_cycles),
            "iga_collected_at": pl.Series([datetime(2024, 12, 20, 8, 0)] * n_cycles),
            "iga_mg_dl": pl.Series([180.0] * n_cycles),
            "iga_censor": pl.Series([None] * n_cycles, dtype=pl.String),
            "has_review_in_window": pl.Series([None] * n_cycles, dtype=pl.Boolean),
            "admin_ids": pl.Series([[f"A{i}a", f"A{i}b"] for i in range(n_cycles)]),
            "exception_count": pl.Series([2] * n_cycles),
            "in_period": pl.Series([True] * n_cycles),
        }
    ).cast(CYCLES)  # type: ignore[arg-type]
    codes = list(RULE_CODES)
    idx = pl.int_range(0, n_findings, eager=True)
    rows = cycles.select("patient_id", "course_id", "cycle_number", "cycle_start", "admin_ids").gather(
        (idx // 2).clip(upper_bound=n_cycles - 1)
    )
    rule = pl.Series([codes[i % len(codes)] for i in range(n_findings)])
    findings = rows.with_columns(
        rule_code=rule,
        severity=rule.replace_strict({c: guideline.rules[c].severity for c in codes}),
        observed=pl.Series([2.0 + (i % 50) / 100 for i in range(n_findings)]),
        limit=pl.lit(2.1),
        unit=pl.lit("g/kg"),
        excess_g=pl.Series([float(i % 13) if i % len(codes) == 0 else None for i in range(n_findings)]),
        message=pl.Series(
            [
                f"Cycle total {120 + i % 40}.0 g = {2 + (i % 50) / 100:.2f} g/kg of 57.0 kg ideal body weight "
                "(limit 2.10 g/kg)."
                for i in range(n_findings)
            ]
        ),
    ).select(list(FINDINGS))
    rejected = pl.DataFrame(
        {"source_file": ["infusions.csv"] * 100, "source_row": list(range(2, 102)), "reason": ["bad date"] * 100}
    ).cast(REJECTED_KEYS)  # type: ignore[arg-type]
    return ReportData(
        findings=findings.cast(FINDINGS),  # type: ignore[arg-type]
        cycles=cycles,
        rejected=rejected.with_columns(administered_at=pl.lit("2025-13-45")),
        out_of_scope=pl.DataFrame(schema=INFUSIONS),
        summary={"exceptions": {"total": n_findings}},
        guideline=guideline,
        generated_at=GENERATED_AT,
    )


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(n_findings: int, cap: int, repeat: int = 1) -> dict[str, Any]:
    """Run in a child process: build the data, then time ``repeat`` writes (the fastest counts)."""
    data = synthetic(n_findings)
    rss_before = peak_rss_mib()
    seconds = float("inf")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ivig_audit_report.xlsx"
        for _ in range(max(1, repeat)):
            started = time.perf_counter()
            stats = write_workbook(data, path, max_detail_rows=cap)
            seconds = min(seconds, time.perf_counter() - started)
        size = path.stat().st_size
    return {
        "findings": n_findings,
        "cycles": data.cycles.height,
        "cap": cap,
        "seconds": round(seconds, 2),
        "rss_data_mib": round(rss_before, 1),
        "rss_peak_mib": round(peak_rss_mib(), 1),
        "file_mib": round(size / 2**20, 2),
        "exceptions_shown": stats.rows_written["Exceptions"],
        "cycles_shown": stats.rows_written["Cycles"],
    }


def run_child(n_findings: int, cap: int, timeout_s: float, repeat: int = 1) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.bench_workbook", "--child", str(n_findings), str(cap), str(repeat)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=timeout_s).stdout
    except subprocess.TimeoutExpired:
        return {"findings": n_findings, "cap": cap, "timeout_s": timeout_s}
    return json.loads(out.strip().splitlines()[-1])


def machine() -> str:
    lxml = _version("lxml") or "not installed (openpyxl uses its pure-Python XML writer)"
    return (
        f"{platform.system()} {platform.machine()}, nproc {os.cpu_count()}, "
        f"Python {platform.python_version()}, openpyxl {openpyxl.__version__}, polars {pl.__version__}, lxml {lxml}"
    )


def _version(module: str) -> str | None:
    try:
        return str(__import__(module).__version__)
    except ImportError:
        return None


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| exceptions | cycles | cap (detail rows) | exceptions shown | write (s) | peak RSS (MiB) "
        "| RSS after data (MiB) | file (MiB) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if "timeout_s" in r:
            lines.append(f"| {r['findings']:,} | | {r['cap']:,} | | > {r['timeout_s']:.0f} (stopped) | | | |")
            continue
        lines.append(
            f"| {r['findings']:,} | {r['cycles']:,} | {r['cap']:,} | {r['exceptions_shown']:,} | {r['seconds']:.1f} "
            f"| {r['rss_peak_mib']:.0f} | {r['rss_data_mib']:.0f} | {r['file_mib']:.1f} |"
        )
    return "\n".join(lines)


def update_markdown(path: Path, body: str) -> None:
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        text = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = (text.rstrip() + "\n\n" if text else "") + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--caps", choices=["default", "all", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per write (default 900)")
    parser.add_argument("--repeat", type=int, default=1, help="writes per measurement, fastest counts (default 1)")
    parser.add_argument("--update", type=Path, help="write the table into this markdown file")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(*args.child)))
        return
    results = []
    for n in args.sizes:
        caps = []
        if args.caps in ("default", "both"):
            caps.append(DEFAULT_MAX_DETAIL_ROWS)
        if args.caps in ("all", "both"):
            caps.append(n)
        for cap in caps:
            result = run_child(n, cap, args.timeout * max(1, args.repeat), args.repeat)
            print(json.dumps(result), file=sys.stderr)
            results.append(result)
    repeat = f" --repeat {args.repeat}" if args.repeat > 1 else ""
    fastest = f" Write time: the fastest of {args.repeat} writes." if args.repeat > 1 else ""
    body = (
        f"Measured {datetime.now():%Y-%m-%d} on: {machine()}.{fastest}\n\n"
        f"{table(results)}\n\n"
        f"Command: `.venv/bin/python -m bench.bench_workbook{repeat} --update bench/WORKBOOK.md`"
    )
    print(body)
    if args.update:
        update_markdown(args.update, body)


if __name__ == "__main__":
    main()
