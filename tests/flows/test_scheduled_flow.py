"""The scheduled flow in this process (Prefect's embedded server): retries, failures, earlier runs kept."""

from __future__ import annotations

import errno
import json
import shutil
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from flows import schedule, scheduled, steps

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "sample_data"
AS_OF = datetime(2026, 11, 1)


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    folder = tmp_path / "drop"
    folder.mkdir()
    for name in ("infusions.csv", "labs.csv", "reviews.csv"):
        shutil.copy(SAMPLE / name, folder / name)
    return folder


def _run(drop: Path, root: Path, **extra: Any) -> Any:
    return scheduled.scheduled_audit_flow(
        drop_folder=str(drop), output_root=str(root), settle_seconds=0, as_of=AS_OF, return_state=True, **extra
    )


def test_scheduled_run_writes_a_dated_folder_with_history(drop: Path, tmp_path: Path) -> None:
    """A run writes every report plus the change listing into <run date>_<period>_<time>-<id>, nothing hidden."""
    root = tmp_path / "reports"
    state = _run(drop, root)
    assert state.is_completed(), state.message
    (folder,) = root.iterdir()
    assert folder.name.split("_")[1] == "2026-10"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*steps.REPORT_FILES.values(), "changes_since_previous.csv"]
    )
    summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    assert summary["history"]["since_previous"] is None
    assert summary["history"]["trend"][0]["run"] == folder.name


def test_a_failing_run_leaves_earlier_runs_and_no_partial_folder(
    drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When writing fails, the earlier run is untouched and no (hidden or final) folder of the failed run remains."""
    root = tmp_path / "reports"
    earlier = root / "2026-10-02_2026-09_060000"
    earlier.mkdir(parents=True)
    (earlier / "summary.json").write_text('{"generated_at": "2026-10-02T06:00:00"}', encoding="utf-8")

    def broken_write(*_: object, **__: object) -> None:
        raise RuntimeError("disk vanished")

    monkeypatch.setattr(steps, "write_reports", broken_write)
    state = _run(drop, root)
    assert state.is_failed()
    assert [p.name for p in root.iterdir()] == [earlier.name]
    assert (earlier / "summary.json").read_text(encoding="utf-8") == '{"generated_at": "2026-10-02T06:00:00"}'


def test_transient_error_is_retried_and_bad_input_is_not(
    drop: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy file is retried until it succeeds; a drop folder without infusions fails at once with the reason."""
    calls: list[Path] = []
    busy = [True]
    real = schedule.resolve_drop_folder

    def flaky(folder: Path, **kwargs: Any) -> schedule.DropSelection:
        calls.append(folder)
        if busy.pop() if busy else False:
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real(folder, **kwargs)

    monkeypatch.setattr(schedule, "resolve_drop_folder", flaky)
    monkeypatch.setattr(scheduled, "resolve_task", scheduled.resolve_task.with_options(retry_delay_seconds=0))
    assert _run(drop, tmp_path / "a").is_completed()
    assert len(calls) == 2

    calls.clear()
    empty = tmp_path / "empty"
    empty.mkdir()
    state = _run(empty, tmp_path / "b")
    assert state.is_failed()
    assert state.message.startswith("Bad input: ")
    assert "no export found for infusions" in state.message
    assert len(calls) == 1
    assert not (tmp_path / "b").exists() or not list((tmp_path / "b").iterdir())


def test_artifact_rows_and_markdown_carry_counts_only() -> None:
    """The artifact table lists every rule and the reconciliation; the markdown names files, not patients."""
    summary = {
        "period": {"start": "2026-10-01", "end": "2026-10-31"},
        "exceptions": {"total": 3, "by_rule": {"DOSE_ABOVE_MAX": 3}, "by_severity": {"high": 3}},
        "compliance_by_rule": {"DOSE_ABOVE_MAX": 90.0},
        "reconciliation": {"rows_read": 10, "rows_audited": 10, "balanced": True},
        "history": {"run": {"compliance_pct": 90.0}, "since_previous": None, "note": "no earlier run"},
    }
    rows = scheduled.artifact_rows(summary)
    assert rows[0]["item"] == "DOSE_ABOVE_MAX"
    assert rows[0]["count"] == 3
    assert {r["item"] for r in rows if r["section"].startswith("reconciliation")} == {
        "rows_read",
        "rows_audited",
        "balanced",
    }
    text = scheduled.report_markdown(summary, Path("/srv/reports/run"), {"infusions": "infusions.csv"})
    assert "file:///srv/reports/run" in text
    assert "no comparison (no earlier run)" in text


def test_period_start_after_end_fails_as_bad_input(drop: Path, tmp_path: Path) -> None:
    """An inverted period is refused with the reason as the run's state message."""
    state = _run(drop, tmp_path / "r", period_start=date(2026, 10, 31), period_end=date(2026, 10, 1))
    assert state.is_failed()
    assert state.message == "Bad input: period_start 2026-10-31 is after period_end 2026-10-01"
