"""End-to-end benchmark: seeded synthetic exports of 100k, 1M and 10M rows, audited for real.

Usage (from the project root)::

    .venv/bin/python -m bench.bench_audit                      # 100k and 1M, both modes
    .venv/bin/python -m bench.bench_audit --sizes 100000 1000000 10000000
    .venv/bin/python -m bench.bench_audit --sizes 100000 --modes pipeline --reference

For each size it generates the data once into ``bench/data/rows_N/`` (git-ignored; the
generator is seeded, so the files are the same every time), then runs, each in a
fresh process so peak memory is that run's alone:

* ``cli``: the real ``ivig-audit run`` (Prefect's embedded server included): wall
  time, peak RSS, and the step timings the run wrote into ``summary.json``;
* ``partitioned`` (``--modes ... partitioned``): ``ivig-audit run --partitions 4``, the
  audit step on a Dask LocalCluster (prefect-dask), to compare with ``cli``;
* ``pipeline``: the same steps without Prefect, each timed on its own (read, validate,
  group, rules, write CSV, write workbook); the timings also go into ``summary.json``;
* ``polars-read``: ``pl.read_csv`` of the same infusion file and nothing else, the
  floor for the compute ratio ``(read + validate + group + rules) / polars read``;
  ``--repeats N`` runs it and the pipeline alternately N times and takes the ratio of
  the medians (a shared machine's load moves a single pair by ±30%);
* ``reference`` (``--reference``): three rules by the plain-Python reference
  (``bench/reference.py``) against the engine on the same validated rows.

Peak RSS is the child's ``ru_maxrss`` from ``os.wait4`` (the process and the
descendants it waited for; Prefect's server subprocess is not waited for). Results are
printed as a Markdown table and saved as JSON (``--json``). No assertions: the machine is
shared and timings are noisy; read them, don't gate on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
PYTHON = sys.executable
AS_OF = "2026-11-01T00:00:00"
#: The three rules timed against the plain-Python reference: one per family (dose, IgA, schedule).
THREE_RULES = ("DOSE_ABOVE_MAX", "IGA_NOT_SCREENED", "CYCLE_INTERVAL_SHORT")
STEPS = ("read", "validate", "group", "rules", "write_csv", "write_workbook")
#: Partitions for the ``partitioned`` mode (``ivig-audit run --partitions``): twice the cores here.
PARTITIONS = 4


# ----------------------------------------------------------------- children
def _child_pipeline(data: Path, out: Path) -> dict[str, Any]:
    """run_pipeline, step by step, each step timed (no Prefect): the cli's steps, in its order."""
    from flows import steps

    cfg = steps.RunConfig(
        infusions=data / "infusions.csv",
        labs=data / "labs.csv",
        reviews=data / "reviews.csv",
        out_dir=out,
        generated_at=datetime.fromisoformat(AS_OF),
    )
    timer = steps.Timer()
    inputs = steps.load_inputs(cfg, timer)  # times read, validate and hash_inputs
    rows_read = inputs.infusions.rows_read
    result = steps.audit(inputs, cfg, timer)  # times group and rules
    summary = steps.summarize(inputs, result, cfg, timer.seconds)
    steps.write_reports(inputs, result, summary, cfg, timer)  # puts timer.seconds into summary.json
    return {
        "timings_s": dict(timer.seconds),
        "peak_rss_mib": dict(timer.peak_rss_mib),
        "rows_read": rows_read,
        "findings": result.findings.height,
        "cycles": result.counts["cycles"],
    }


def _child_polars_read(data: Path) -> dict[str, Any]:
    import polars as pl

    start = time.perf_counter()
    frame = pl.read_csv(data / "infusions.csv", infer_schema=False)
    return {"polars_read_s": round(time.perf_counter() - start, 4), "rows": frame.height}


def _child_reference(data: Path) -> dict[str, Any]:
    """Three rules: plain Python (bench/reference.py) vs the engine, on the same validated rows."""
    from audit.engine import build_cycle_table, evaluate_rules, split_scope
    from bench.reference import reference_audit
    from validators.guideline_source import load_guideline
    from validators.infusions import load_infusions
    from validators.labs import load_labs
    from validators.reviews import load_reviews

    now = datetime.fromisoformat(AS_OF)
    full = load_guideline("mayo-2013")
    guideline = full.model_copy(
        update={
            "rules": {
                code: rule.model_copy(update={"enabled": code in THREE_RULES}) for code, rule in full.rules.items()
            }
        }
    )
    infusions = load_infusions(data / "infusions.csv", guideline, now=now).frame
    labs = load_labs(data / "labs.csv", now=now).frame
    reviews = load_reviews(data / "reviews.csv", now=now).frame

    start = time.perf_counter()
    admins, _ = split_scope(infusions, guideline)
    cycles, days = build_cycle_table(admins, labs, reviews, guideline)
    findings = evaluate_rules(cycles, days, guideline)
    engine_s = time.perf_counter() - start

    start = time.perf_counter()
    rows = (infusions.to_dicts(), labs.to_dicts(), reviews.to_dicts())
    to_dicts_s = time.perf_counter() - start
    start = time.perf_counter()
    ref = reference_audit(*rows, guideline, rules=set(THREE_RULES))
    reference_s = time.perf_counter() - start
    return {
        "engine_3_rules_s": round(engine_s, 4),
        "reference_3_rules_s": round(reference_s, 4),
        "to_dicts_s": round(to_dicts_s, 4),
        "engine_findings": findings.height,
        "reference_findings": len(ref),
        "speedup": round(reference_s / engine_s, 1),
    }


# ----------------------------------------------------------------- parent
def _measure(argv: list[str], *, env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run ``argv``; (wall seconds, peak RSS in MB of it and its waited-for children, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    # Drain both pipes in threads while reaping with wait4 (its rusage is this child's own).
    out_chunks: list[str] = []
    err_chunks: list[str] = []
    assert proc.stdout is not None
    assert proc.stderr is not None

    def drain(stream: Any, sink: list[str]) -> None:
        sink.append(stream.read())

    threads = [
        threading.Thread(target=drain, args=(proc.stdout, out_chunks)),
        threading.Thread(target=drain, args=(proc.stderr, err_chunks)),
    ]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    for t in threads:
        t.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout, stderr = "".join(out_chunks), "".join(err_chunks)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{stderr[-3000:]}")
    return wall, usage.ru_maxrss / 1024, stdout


def ensure_data(rows: int) -> Path:
    folder = DATA / f"rows_{rows}"
    if not (folder / "infusions.csv").exists():
        print(f"generating {rows:,} rows into {folder} ...", file=sys.stderr)
        subprocess.run(
            [PYTHON, "-m", "sample_data.generate", "--rows", str(rows), "--seed", "1", "--out", str(folder)],
            cwd=ROOT,
            check=True,
        )
    return folder


def _child(mode: str, data: Path, out: Path) -> list[str]:
    return [PYTHON, "-m", "bench.bench_audit", "--child", mode, "--data", str(data), "--out", str(out)]


def bench_size(rows: int, modes: list[str], reference: bool, repeats: int = 1) -> dict[str, Any]:
    """Every mode on one size. With ``repeats`` > 1, the polars read and the pipeline run
    alternately that many times and the ratio is taken from their medians (the pipeline
    record is the run with the median compute; every run's figures are kept)."""
    data = ensure_data(rows)
    record: dict[str, Any] = {
        "rows_target": rows,
        "infusions_mb": round((data / "infusions.csv").stat().st_size / 1e6, 1),
    }
    reads: list[float] = []
    runs: list[dict[str, Any]] = []
    for _ in range(repeats):
        _, _, stdout = _measure(_child("polars-read", data, data))
        reads.append(json.loads(stdout.splitlines()[-1])["polars_read_s"])
        if "pipeline" in modes:
            out = DATA / "out" / f"pipeline_{rows}"
            wall, rss, stdout = _measure(_child("pipeline", data, out))
            child = json.loads(stdout.splitlines()[-1])
            t = child["timings_s"]
            compute = sum(t[k] for k in ("read", "validate", "group", "rules"))
            runs.append({"wall_s": round(wall, 2), "peak_rss_mb": round(rss), **child, "compute_s": round(compute, 2)})
            print(f"{rows:>10,} pipeline: {wall:6.1f} s, {rss:6.0f} MB, {t}, {child['peak_rss_mib']}", file=sys.stderr)
    read_s = statistics.median(reads)
    record["polars_read"] = {"polars_read_s": round(read_s, 4), "runs_s": reads}
    if runs:
        by_compute = sorted(runs, key=lambda run: run["compute_s"])
        compute_s = statistics.median(run["compute_s"] for run in runs)
        record["pipeline"] = {
            **by_compute[(len(runs) - 1) // 2],
            "compute_over_polars_read": round(compute_s / read_s, 1),
            "compute_runs_s": [run["compute_s"] for run in runs],
            "ratio_runs": [round(run["compute_s"] / read, 1) for run, read in zip(runs, reads, strict=True)],
        }
    for mode in ("cli", "partitioned"):
        if mode not in modes:
            continue
        out = DATA / "out" / f"{mode}_{rows}"
        env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        argv = [str(ROOT / ".venv" / "bin" / "ivig-audit"), "run"]
        argv += ["--infusions", str(data / "infusions.csv"), "--labs", str(data / "labs.csv")]
        argv += ["--reviews", str(data / "reviews.csv"), "--as-of", AS_OF, "--out", str(out)]
        if mode == "partitioned":
            argv += ["--partitions", str(PARTITIONS)]
        wall, rss, _ = _measure(argv, env=env)
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        timings = summary.get("timings_s", {})
        record[mode] = {
            "wall_s": round(wall, 2),
            "peak_rss_mb": round(rss),
            "timings_s": timings,
            "peak_rss_mib": summary.get("peak_rss_mib", {}),
            "steps_s": round(sum(timings.values()), 2),
        }
        print(f"{rows:>10,} {mode}: {wall:6.1f} s, {rss:6.0f} MB, {timings}", file=sys.stderr)
    if reference:
        _, _, stdout = _measure(_child("reference", data, data))
        record["reference"] = json.loads(stdout.splitlines()[-1])
        print(f"{rows:>10,} reference: {record['reference']}", file=sys.stderr)
    return record


def machine() -> dict[str, Any]:
    import psutil

    return {
        "date": datetime.now().strftime("%Y-%m-%d"),
        "cpus": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "packages": {
            name: version(name)
            for name in ("polars", "pandera", "prefect", "openpyxl", "lxml", "dask", "distributed", "prefect-dask")
        },
    }


def table(records: list[dict[str, Any]]) -> str:
    head = (
        "| rows | CSV MB | mode | wall s | peak RSS MB | read | validate | group | rules | write CSV | workbook |"
        " polars read s | compute / read |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in records:
        for mode in ("pipeline", "cli", "partitioned"):
            if mode not in r:
                continue
            m = r[mode]
            t = m["timings_s"]
            cells = [f"{t[s]:.2f}" if s in t else "–" for s in STEPS]
            if "audit" in t and "group" not in t:  # a partitioned run times group + rules as one step
                cells[STEPS.index("group")] = f"{t['audit']:.2f} (group + rules)"
            ratio = m.get("compute_over_polars_read", "–")
            if len(m.get("ratio_runs", [])) > 1:  # --repeats: the median's ratio, then each pair's range
                ratio = f"{ratio} ({min(m['ratio_runs'])}-{max(m['ratio_runs'])})"
            lines.append(
                f"| {r['rows_target']:,} | {r['infusions_mb']} | {mode} | {m['wall_s']:.1f} | {m['peak_rss_mb']:,} | "
                + " | ".join(cells)
                + f" | {r['polars_read']['polars_read_s']:.2f} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--modes", nargs="+", choices=["pipeline", "cli", "partitioned"], default=["pipeline", "cli"])
    parser.add_argument("--reference", action="store_true", help="also time 3 rules in plain Python vs the engine")
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="run the polars read and the pipeline alternately this many times; the ratio is of their medians",
    )
    parser.add_argument("--child", choices=["pipeline", "polars-read", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        if args.child == "pipeline":
            result = _child_pipeline(args.data, args.out)
        elif args.child == "polars-read":
            result = _child_polars_read(args.data)
        else:
            result = _child_reference(args.data)
        print(json.dumps(result))
        return 0

    records = [bench_size(rows, args.modes, args.reference, args.repeats) for rows in args.sizes]
    report = {"machine": machine(), "results": records}
    print(json.dumps(report["machine"], indent=2))
    print(table(records))
    for r in records:
        if "reference" in r:
            ref = r["reference"]
            print(
                f"{r['rows_target']:,} rows, 3 rules: plain Python {ref['reference_3_rules_s']:.2f} s "
                f"(+{ref['to_dicts_s']:.2f} s to_dicts), engine {ref['engine_3_rules_s']:.2f} s: "
                f"{ref['speedup']}x; findings {ref['engine_findings']} vs {ref['reference_findings']}"
            )
    if args.json:
        args.json.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
