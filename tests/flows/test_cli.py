"""End to end: `ivig-audit run` through the Prefect flow, as a user runs it.

Prefect's embedded server starts once for the whole session (~20 s on a fresh home);
every later run in the session costs about 2 s.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import openpyxl
import polars as pl
import pytest

from flows import steps
from flows.cli import main

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
AS_OF = "2026-11-01T00:00:00"
EXCEPTION_COLUMNS = [
    "rule_code", "severity", "patient_id", "course_id", "cycle_number",
    "cycle_start", "observed", "limit", "message", "admin_ids",
]  # fmt: skip
CYCLE_COLUMNS = [
    "patient_id", "course_id", "cycle_number", "cycle_start", "cycle_end", "infusion_days",
    "total_g", "dosing_weight_kg", "weight_basis", "g_per_kg", "max_daily_g_per_kg", "interval_days",
]  # fmt: skip


def run_cli(*args: str | Path) -> int:
    return main(["run", *[str(a) for a in args]])


def sample_args(out: Path, *extra: str | Path) -> list[str | Path]:
    return [
        "--infusions", SAMPLE / "infusions.csv",
        "--labs", SAMPLE / "labs.csv",
        "--reviews", SAMPLE / "reviews.csv",
        "--as-of", AS_OF, "--out", out, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One audit of the committed sample through the CLI and Prefect (pays the start-up once)."""
    out = tmp_path_factory.mktemp("sample") / "reports"
    return run_cli(*sample_args(out)), out


def header(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return next(csv.reader(fh))


def test_sample_run_exits_zero_and_writes_every_output(sample_run: tuple[int, Path]) -> None:
    """The sample audit exits 0 and writes the contract's files plus the out-of-scope list."""
    code, out = sample_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(steps.REPORT_FILES.values())


def test_output_columns_follow_the_contract(sample_run: tuple[int, Path]) -> None:
    """exceptions.csv, cycles.csv and rejected_rows.csv start with the contract's columns."""
    _, out = sample_run
    assert header(out / "exceptions.csv")[: len(EXCEPTION_COLUMNS)] == EXCEPTION_COLUMNS
    assert header(out / "cycles.csv")[: len(CYCLE_COLUMNS)] == CYCLE_COLUMNS
    assert header(out / "rejected_rows.csv")[:3] == ["source_file", "source_row", "reason"]
    row = next(csv.DictReader((out / "exceptions.csv").open(encoding="utf-8")))
    assert len(row["cycle_start"]) == 10
    assert row["cycle_start"][4] == "-"


def test_sample_reconciliation_balances(sample_run: tuple[int, Path]) -> None:
    """summary.json: rows read = audited + out of scope + rejected + duplicate, with the sample's numbers."""
    _, out = sample_run
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rec = summary["reconciliation"]
    assert rec == {
        "rows_read": 5255,
        "rows_audited": 5028,
        "rows_out_of_scope": 201,
        "rows_rejected": 24,
        "rows_duplicate": 2,
        "balanced": True,
    }
    assert summary["guideline"]["name"] == "mayo-2013"
    assert {i["kind"] for i in summary["inputs"]} == {"infusions", "labs", "reviews"}
    assert all(len(i["sha256"]) == 64 for i in summary["inputs"])
    assert summary["exceptions"]["total"] == sum(summary["exceptions"]["by_rule"].values())
    steps_timed = {"read", "validate", "hash_inputs", "group", "rules", "write_csv", "write_workbook"}
    assert set(summary["timings_s"]) == steps_timed
    peaks = summary["peak_rss_mib"]
    assert set(peaks) == steps_timed
    assert all(peak > 0 for peak in peaks.values())


def test_sample_exceptions_match_the_generators_expectation(sample_run: tuple[int, Path]) -> None:
    """The exceptions equal those the sample generator planted, worked out independently of the engine."""
    _, out = sample_run
    keys = ["patient_id", "rule_code", "cycle_start"]
    got = pl.read_csv(out / "exceptions.csv", infer_schema=False).select(keys).sort(keys)
    want = pl.read_csv(SAMPLE / "expected_exceptions.csv", infer_schema=False).select(keys).sort(keys)
    assert got.equals(want)


def test_rejected_rows_name_file_line_and_reason(sample_run: tuple[int, Path]) -> None:
    """Every rejected row carries its source file, line and a reason naming the column."""
    _, out = sample_run
    rejected = pl.read_csv(out / "rejected_rows.csv", infer_schema=False)
    assert rejected.height == 24 + 3 + 1  # infusions, labs, reviews
    assert rejected["source_row"].cast(pl.Int64).min() >= 2
    assert all(":" in r for r in rejected["reason"])


def test_workbook_has_the_five_contract_sheets(sample_run: tuple[int, Path]) -> None:
    """The workbook holds Summary, Exceptions, Cycles, Rejected rows and Guideline."""
    _, out = sample_run
    names = openpyxl.load_workbook(out / "ivig_audit_report.xlsx", read_only=True).sheetnames
    assert {"Summary", "Exceptions", "Cycles", "Rejected rows", "Guideline"} <= set(names)


def test_missing_columns_exit_2_with_one_message_and_no_report(
    sample_run: tuple[int, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A file lacking required columns: exit 2, one message naming file and columns, no report."""
    bad = tmp_path / "export.csv"
    bad.write_text("admin_id,patient_id,administered_at,product,dose\nA1,P1,2025-01-01 09:00,Privigen,10\n")
    out = tmp_path / "out"
    assert run_cli("--infusions", bad, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"Error: {bad}: missing required columns: dose_unit, weight, weight_unit, indication"
    assert not out.exists()


def test_missing_file_exits_2_before_prefect(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A path that doesn't exist is refused with exit 2 naming it."""
    assert run_cli("--infusions", tmp_path / "nope.csv", "--out", tmp_path / "o") == 2
    assert capsys.readouterr().err.strip() == f"Error: {tmp_path / 'nope.csv'}: file not found (--infusions)"


def test_bad_period_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--period-start after --period-end is a configuration error."""
    args = sample_args(tmp_path / "o", "--period-start", "2026-02-01", "--period-end", "2026-01-01")
    assert run_cli(*args) == 2
    assert "after --period-end" in capsys.readouterr().err


def test_pseudonymize_without_key_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--pseudonymize with no key in the environment is refused."""
    assert run_cli(*sample_args(tmp_path / "o", "--pseudonymize")) == 2
    assert "IVIG_AUDIT_PSEUDONYM_KEY" in capsys.readouterr().err


def _all_text(out: Path) -> str:
    texts = [p.read_text(encoding="utf-8") for p in out.glob("*.csv")]
    texts.append((out / "summary.json").read_text(encoding="utf-8"))
    wb = openpyxl.load_workbook(out / "ivig_audit_report.xlsx", read_only=True)
    for ws in wb.worksheets:
        for row in ws.iter_rows(values_only=True):
            texts.append(" ".join(str(v) for v in row if v is not None))
    return "\n".join(texts)


def test_pseudonymize_hides_every_patient_id_and_is_stable(
    sample_run: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With --pseudonymize no raw patient id appears in any output, and the same key gives the same ids."""
    monkeypatch.setenv("IVIG_AUDIT_PSEUDONYM_KEY", "test-key-not-secret")
    first, second = tmp_path / "a", tmp_path / "b"
    assert run_cli(*sample_args(first, "--pseudonymize")) == 0
    assert run_cli(*sample_args(second, "--pseudonymize")) == 0
    raw_ids = set(pl.read_csv(SAMPLE / "infusions.csv", infer_schema=False)["patient_id"].drop_nulls())
    text = _all_text(first)
    assert not [pid for pid in raw_ids if pid in text]
    a = pl.read_csv(first / "exceptions.csv", infer_schema=False)
    b = pl.read_csv(second / "exceptions.csv", infer_schema=False)
    assert a["patient_id"].to_list() == b["patient_id"].to_list()
    assert a["patient_id"].str.starts_with("PS-").all()
    assert a.height == 379


def test_period_reports_only_cycles_starting_inside(sample_run: tuple[int, Path], tmp_path: Path) -> None:
    """--period-start/--period-end keep only cycles starting in the period, with all history as context."""
    out = tmp_path / "p"
    assert run_cli(*sample_args(out, "--period-start", "2026-03-01", "--period-end", "2026-03-31")) == 0
    cycles = pl.read_csv(out / "cycles.csv", infer_schema=False)
    exceptions = pl.read_csv(out / "exceptions.csv", infer_schema=False)
    for starts in (cycles["cycle_start"], exceptions["cycle_start"]):
        assert starts.len() > 0
        assert starts.min() >= "2026-03-01"
        assert starts.max() <= "2026-03-31"
    assert int(cycles["cycle_number"].cast(pl.Int64).max()) > 1  # type: ignore[arg-type]


def test_site_b_xlsx_with_mapping_and_parquet_labs(sample_run: tuple[int, Path], tmp_path: Path) -> None:
    """An XLSX export with its own column names (mapping file) and Parquet labs audit like any other."""
    site = SAMPLE / "site_b"
    out = tmp_path / "b"
    code = run_cli(
        "--infusions", site / "infusions.xlsx", "--labs", site / "labs.parquet",
        "--mapping", site / "mapping.csv", "--as-of", AS_OF, "--out", out,
    )  # fmt: skip
    assert code == 0
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    rec = summary["reconciliation"]
    assert rec["rows_read"] == 1311
    assert rec["rows_audited"] == 1209
    assert rec["balanced"]
    assert summary["exceptions"]["total"] == 102


def test_internal_error_exits_1_without_data(
    sample_run: tuple[int, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected failure exits 1 with a message that quotes no data, and writes no report."""

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("P057571 secret detail")

    monkeypatch.setattr(steps, "audit", boom)
    out = tmp_path / "o"
    assert run_cli(*sample_args(out)) == 1
    err = capsys.readouterr().err
    assert "Internal error" in err
    assert "P057571" not in err.splitlines()[-1]
    assert not (out / "summary.json").exists()


def test_console_logs_carry_no_patient_identifier(
    sample_run: tuple[int, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """What the run prints (Prefect's logs and the CLI summary) names no patient."""
    assert run_cli(*sample_args(tmp_path / "o")) == 0
    captured = capfd.readouterr()
    printed = captured.out + captured.err
    assert "Rows read 5255" in printed
    raw_ids = set(pl.read_csv(SAMPLE / "infusions.csv", infer_schema=False)["patient_id"].drop_nulls())
    assert not [pid for pid in raw_ids if pid in printed]


def test_console_script_is_installed() -> None:
    """The `ivig-audit` console script runs and refuses a missing file with exit 2."""
    exe = shutil.which("ivig-audit", path=str(Path(sys.executable).parent))
    assert exe is not None
    done = subprocess.run(
        [exe, "run", "--infusions", "nope.csv", "--out", "x"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip() == "Error: nope.csv: file not found (--infusions)"


def test_partitioned_run_gives_identical_reports(sample_run: tuple[int, Path], tmp_path: Path) -> None:
    """--partitions runs the audit per patient partition on Dask and writes the same CSV reports."""
    _, single = sample_run
    out = tmp_path / "parts"
    assert run_cli(*sample_args(out, "--partitions", "3")) == 0
    for name in ("exceptions.csv", "cycles.csv", "rejected_rows.csv", "out_of_scope_rows.csv"):
        assert (out / name).read_bytes() == (single / name).read_bytes(), name
