"""The scheduled run's pure decisions: drop folder, default period, run folder, atomic publish."""

from __future__ import annotations

import errno
import os
from datetime import date, datetime
from pathlib import Path

import pytest

from flows import schedule


@pytest.mark.parametrize(
    ("today", "start", "end"),
    [
        (date(2026, 11, 2), date(2026, 10, 1), date(2026, 10, 31)),
        (date(2026, 1, 2), date(2025, 12, 1), date(2025, 12, 31)),
        (date(2026, 3, 31), date(2026, 2, 1), date(2026, 2, 28)),
        (date(2024, 3, 1), date(2024, 2, 1), date(2024, 2, 29)),
        (date(2026, 12, 31), date(2026, 11, 1), date(2026, 11, 30)),
    ],
)
def test_previous_month_crosses_month_and_year_boundaries(today: date, start: date, end: date) -> None:
    """The default period is the whole calendar month before the run's date, January and leap years included."""
    assert schedule.previous_month(today) == (start, end)
    assert schedule.resolve_period(today, None, None) == (start, end)


def test_resolve_period_keeps_given_dates_and_completes_a_lone_one() -> None:
    """Given dates win; a lone start or end is completed to its calendar month."""
    today = date(2026, 11, 2)
    assert schedule.resolve_period(today, date(2026, 5, 3), date(2026, 6, 9)) == (date(2026, 5, 3), date(2026, 6, 9))
    assert schedule.resolve_period(today, date(2026, 2, 1), None) == (date(2026, 2, 1), date(2026, 2, 28))
    assert schedule.resolve_period(today, None, date(2026, 4, 30)) == (date(2026, 4, 1), date(2026, 4, 30))


def test_period_label_and_run_folder_name() -> None:
    """A whole month is labelled YYYY-MM; the folder name starts with the run date and ends with time and run id."""
    assert schedule.period_label(date(2026, 10, 1), date(2026, 10, 31)) == "2026-10"
    assert schedule.period_label(date(2026, 10, 5), date(2026, 10, 31)) == "2026-10-05_2026-10-31"
    started = datetime(2026, 11, 2, 6, 0, 5)
    name = schedule.run_folder_name(
        started, date(2026, 10, 1), date(2026, 10, 31), "1a2b3c4d-5e6f-0000-0000-000000000000"
    )
    assert name == "2026-11-02_2026-10_060005-1a2b3c4d"
    assert schedule.run_folder_name(started, date(2026, 10, 1), date(2026, 10, 31)) == "2026-11-02_2026-10_060005"


def test_select_exports_takes_the_newest_file_of_each_kind() -> None:
    """The newest infusions/labs/reviews/mapping file by mtime is chosen; other names are ignored."""
    chosen = schedule.select_exports(
        [
            ("infusions_2026-09.csv", 100.0),
            ("Infusions_2026-10.xlsx", 200.0),
            ("labs.parquet", 50.0),
            ("labs_old.csv", 10.0),
            ("mapping.csv", 5.0),
            ("mapping.xlsx", 500.0),  # mappings are CSV only
            ("notes.csv", 900.0),
        ]
    )
    assert chosen == {"infusions": "Infusions_2026-10.xlsx", "labs": "labs.parquet", "mapping": "mapping.csv"}


@pytest.mark.parametrize(
    "name", [".infusions.csv", "~$infusions.xlsx", "infusions.csv.tmp", "infusions.csv.part", "infusions.crdownload"]
)
def test_partial_hidden_and_lock_files_are_ignored(name: str) -> None:
    """Hidden files, Office lock files and partial downloads are never taken as an export."""
    assert schedule.kind_of(name) is None
    assert schedule.select_exports([(name, 1e12), ("infusions.csv", 1.0)]) == {"infusions": "infusions.csv"}


def _touch(path: Path, mtime: float) -> Path:
    path.write_text("x\n", encoding="utf-8")
    os.utime(path, (mtime, mtime))
    return path


def test_resolve_drop_folder_reads_mtimes_and_reports_the_files(tmp_path: Path) -> None:
    """On disk: the newest export per kind is used and its modification time is reported."""
    _touch(tmp_path / "infusions_a.csv", 1_000)
    newest = _touch(tmp_path / "infusions_b.csv", 2_000)
    _touch(tmp_path / "infusions_c.csv.tmp", 3_000)
    (tmp_path / "infusions_dir.csv").mkdir()
    selection = schedule.resolve_drop_folder(tmp_path, now=10_000)
    assert selection.files == {"infusions": newest}
    assert selection.path("labs") is None
    assert selection.modified["infusions"] == datetime.fromtimestamp(2_000).isoformat(timespec="seconds")


def test_drop_folder_without_infusions_or_missing_is_bad_input(tmp_path: Path) -> None:
    """No infusion export, or no folder at all, is a DropFolderError naming the folder."""
    _touch(tmp_path / "labs.csv", 1_000)
    with pytest.raises(schedule.DropFolderError, match=r"no export found for infusions"):
        schedule.resolve_drop_folder(tmp_path)
    with pytest.raises(schedule.DropFolderError, match="drop folder not found"):
        schedule.resolve_drop_folder(tmp_path / "nope")


def test_a_file_changed_moments_ago_is_a_transient_error(tmp_path: Path) -> None:
    """An export younger than the settle time raises FileStillBeingWritten, which counts as transient."""
    _touch(tmp_path / "infusions.csv", 1_000)
    with pytest.raises(schedule.FileStillBeingWritten) as caught:
        schedule.resolve_drop_folder(tmp_path, settle_seconds=60, now=1_030)
    assert schedule.is_transient_fs_error(caught.value)
    assert schedule.resolve_drop_folder(tmp_path, settle_seconds=60, now=1_061).files


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (OSError(errno.EBUSY, "busy"), True),
        (OSError(errno.EIO, "io"), True),
        (OSError(errno.ETIMEDOUT, "timed out"), True),
        (BlockingIOError(errno.EAGAIN, "again"), True),
        (FileNotFoundError(errno.ENOENT, "missing"), False),
        (PermissionError(errno.EACCES, "denied"), False),
        (ValueError("bad"), False),
        (None, False),
    ],
)
def test_only_transient_file_system_errors_are_retried(exc: BaseException | None, transient: bool) -> None:
    """Busy, locked, timed-out and I/O errors are transient; a missing file or bad data is not."""
    assert schedule.is_transient_fs_error(exc) is transient


def test_publish_renames_the_staging_folder_into_place(tmp_path: Path) -> None:
    """A run is built in a hidden sibling and appears under its final name only when published."""
    final = tmp_path / "root" / "2026-11-02_2026-10_060000"
    staging = schedule.prepare_staging(final)
    assert staging.name == ".2026-11-02_2026-10_060000.partial"
    (staging / "summary.json").write_text("{}", encoding="utf-8")
    assert not final.exists()
    schedule.publish(staging, final)
    assert (final / "summary.json").is_file()
    assert not staging.exists()


def test_publish_never_overwrites_an_earlier_run(tmp_path: Path) -> None:
    """Publishing onto an existing run folder fails and leaves the earlier run untouched."""
    final = tmp_path / "run"
    final.mkdir()
    (final / "summary.json").write_text("earlier", encoding="utf-8")
    staging = tmp_path / ".run.partial"
    staging.mkdir()
    with pytest.raises(FileExistsError):
        schedule.publish(staging, final)
    with pytest.raises(FileExistsError):
        schedule.prepare_staging(final)
    assert (final / "summary.json").read_text(encoding="utf-8") == "earlier"


def test_discard_removes_an_unfinished_run(tmp_path: Path) -> None:
    """A failed run's staging folder is removed; nothing is left under a final name."""
    final = tmp_path / "run"
    staging = schedule.prepare_staging(final)
    (staging / "exceptions.csv").write_text("half", encoding="utf-8")
    schedule.discard(staging)
    assert list(tmp_path.iterdir()) == []
