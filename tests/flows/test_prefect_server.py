"""Integration: a real Prefect server on localhost serves the scheduled audit, runs it, keeps its records.

The server (SQLite, its own PREFECT_HOME) starts once per session in a subprocess; the
runner that serves the deployment and the client that triggers runs and reads them back are
subprocesses too, so this suite's own Prefect settings (an ephemeral home, no API URL) stay
as they are. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
AS_OF = "2026-11-01T00:00:00"
STARTUP_TIMEOUT_S = 90


@dataclass(frozen=True)
class PrefectServer:
    api_url: str
    env: dict[str, str]  # what a client of this server runs with
    startup_s: float


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_UI_ENABLED="false",
        PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
        PREFECT_RUNNER_POLL_FREQUENCY="1",  # the runner looks for runs every second, not every 10
    )
    return env


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a subprocess this test started, and its children (it leads its own process group)."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """`prefect server start` on a free loopback port with SQLite; waits for /api/health."""
    base = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = _clean_env(base / "server-home")
    log = (base / "server.log").open("wb")
    prefect = str(Path(sys.executable).parent / "prefect")
    started = time.monotonic()
    proc = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    api_url = f"http://127.0.0.1:{port}/api"
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"prefect server exited with {proc.returncode}: {(base / 'server.log').read_text()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"{api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                pytest.fail(f"prefect server not healthy after {STARTUP_TIMEOUT_S} s")
            time.sleep(0.25)
        client_env = _clean_env(base / "client-home")
        client_env["PREFECT_API_URL"] = api_url
        yield PrefectServer(api_url=api_url, env=client_env, startup_s=round(time.monotonic() - started, 1))
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="session")
def served_runs(prefect_server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Serve the scheduled flow, trigger three runs through the API (two good, one bad), read them back."""
    base = tmp_path_factory.mktemp("served")
    drop, empty, output_root = base / "drop", base / "empty-drop", base / "reports"
    drop.mkdir()
    empty.mkdir()
    for name in ("infusions.csv", "labs.csv", "reviews.csv"):
        shutil.copy(SAMPLE / name, drop / name)
    (drop / "infusions_partial.csv.tmp").write_text("half a file", encoding="utf-8")
    parameters = {"drop_folder": str(drop), "output_root": str(output_root), "settle_seconds": 0}
    helper = [sys.executable, "-m", "tests.flows.server_helpers"]
    serve_log = (base / "serve.log").open("wb")
    runner = subprocess.Popen(
        [*helper, "serve", json.dumps(parameters)],
        cwd=ROOT,
        env=prefect_server.env,
        stdout=serve_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    started = time.monotonic()
    try:
        runs = [
            {"as_of": AS_OF},
            {"as_of": AS_OF},
            {"as_of": AS_OF, "drop_folder": str(empty)},
        ]
        done = subprocess.run(
            [*helper, "trigger", json.dumps(runs)],
            cwd=ROOT,
            env=prefect_server.env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:] + (base / "serve.log").read_text()[-3000:]
        records = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        _stop(runner)
        serve_log.close()
    return {
        "records": records,
        "output_root": output_root,
        "seconds": round(time.monotonic() - started, 1),
        "startup_s": prefect_server.startup_s,
    }


def _patient_ids() -> set[str]:
    ids: set[str] = set()
    for name in ("infusions.csv", "labs.csv", "reviews.csv"):
        ids |= set(pl.read_csv(SAMPLE / name, infer_schema=False)["patient_id"].drop_nulls())
    return ids


def test_served_deployment_runs_to_completion_and_publishes_a_dated_folder(served_runs: dict[str, Any]) -> None:
    """A run triggered through the API completes and its reports land in one dated folder per run."""
    first, second, _ = served_runs["records"]
    assert first["state"] == "COMPLETED", first["message"]
    assert second["state"] == "COMPLETED", second["message"]
    assert first["name"] == "ivig-audit 2026-10 (scheduled)"
    folders = sorted(p.name for p in served_runs["output_root"].iterdir())
    assert len(folders) == 2
    assert all(name.endswith(tuple(r["id"].replace("-", "")[:8] for r in (first, second))) for name in folders)
    assert all("_2026-10_" in name for name in folders)
    summary = json.loads((served_runs["output_root"] / folders[0] / "summary.json").read_text(encoding="utf-8"))
    assert summary["period"] == {"start": "2026-10-01", "end": "2026-10-31"}
    assert {Path(i["file"]).name for i in summary["inputs"]} == {"infusions.csv", "labs.csv", "reviews.csv"}


def test_each_step_logs_counts_and_the_files_used(served_runs: dict[str, Any]) -> None:
    """The run's logs in the API name the exports used and every step's counts and time."""
    logs = "\n".join(served_runs["records"][0]["logs"])
    assert "using infusions export infusions.csv" in logs
    assert "infusions: 5255 rows read" in logs
    assert "audited 5028 rows" in logs
    assert "reports written to" in logs
    assert "run folder published" in logs
    assert "no comparison with a previous run" in logs


def test_artifacts_hold_counts_per_rule_reconciliation_and_the_report_link(served_runs: dict[str, Any]) -> None:
    """The table artifact has per-rule counts and the reconciliation; the markdown and link name the folder."""
    record = served_runs["records"][0]
    artifacts = {a["key"]: a for a in record["artifacts"]}
    assert set(artifacts) == {"ivig-audit-counts", "ivig-audit-report", "ivig-audit-report-folder"}
    table = artifacts["ivig-audit-counts"]
    assert table["type"] == "table"
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    by_item = {(r["section"], r["item"]): r["count"] for r in rows}
    summary_path = next(p for p in served_runs["output_root"].iterdir() if record["id"].replace("-", "")[:8] in p.name)
    summary = json.loads((summary_path / "summary.json").read_text(encoding="utf-8"))
    for code, count in summary["exceptions"]["by_rule"].items():
        assert by_item[("exceptions by rule", code)] == count
    assert by_item[("reconciliation (infusions)", "rows_read")] == 5255
    assert str(summary_path) in artifacts["ivig-audit-report"]["data"]
    assert artifacts["ivig-audit-report-folder"]["type"] == "markdown"  # Prefect stores a link artifact as markdown
    assert summary_path.as_uri() in artifacts["ivig-audit-report-folder"]["data"]


def test_second_run_reports_changes_since_the_first(served_runs: dict[str, Any]) -> None:
    """The second run compares with the first: same data, so nothing new or resolved, all still open."""
    second = served_runs["records"][1]
    folder = next(p for p in served_runs["output_root"].iterdir() if second["id"].replace("-", "")[:8] in p.name)
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    since = summary["history"]["since_previous"]
    assert (since["new"], since["resolved"]) == (0, 0)
    assert since["still_open"] == summary["exceptions"]["total"] > 0
    assert len(summary["history"]["trend"]) == 2
    assert (folder / "changes_since_previous.csv").is_file()


def test_bad_input_fails_the_run_with_the_reason_and_writes_nothing(served_runs: dict[str, Any]) -> None:
    """A drop folder without an infusion export fails the run, the reason is its state message, no folder."""
    bad = served_runs["records"][2]
    assert bad["state"] == "FAILED"
    assert bad["message"].startswith("Bad input: ")
    assert "no export found for infusions" in bad["message"]
    assert "resolve-drop-folder" in bad["task_runs"]
    assert len(list(served_runs["output_root"].iterdir())) == 2  # no hidden leftovers either


def test_no_patient_identifier_reaches_prefect(served_runs: dict[str, Any]) -> None:
    """Parameters, run names, logs and artifacts read back from the API contain no patient id of the input."""
    ids = _patient_ids()
    assert len(ids) > 100
    for record in served_runs["records"]:
        shown = json.dumps({k: record[k] for k in ("name", "message", "parameters", "logs", "artifacts")}, default=str)
        leaked = sorted(pid for pid in ids if pid in shown)
        assert not leaked, leaked[:5]


def test_server_round_trip_is_fast_enough(served_runs: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """Start-up plus three served runs stay well inside the two-minute budget."""
    with capsys.disabled():
        print(f"\n[prefect server] start-up {served_runs['startup_s']} s, three served runs {served_runs['seconds']} s")
    assert served_runs["startup_s"] + served_runs["seconds"] < 120, served_runs
