"""Scheduled runs at the edge: the drop folder, the default period, the run folder.

No Prefect here. The choices are pure functions (names, mtimes and dates in, decisions
out) with thin I/O wrappers, so the rules are tested without files or a clock.

Drop-folder naming convention (case-insensitive): the newest file (by modification time)
whose name starts with the kind is used, e.g. ``infusions_2026-11-01.csv``:

- ``infusions*.csv|xlsx|parquet`` (required)
- ``labs*.csv|xlsx|parquet`` (optional)
- ``reviews*.csv|xlsx|parquet`` (optional)
- ``mapping*.csv`` (optional column mapping)

Ignored: hidden files (``.name``), Office lock files (``~$name``), and partial downloads or
temporary files (``*.tmp``, ``*.part``, ``*.partial``, ``*.crdownload``, ``*.swp``).
"""

from __future__ import annotations

import calendar
import contextlib
import errno
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

#: Kind -> accepted extensions, in the order the kinds are reported.
EXPORT_KINDS: dict[str, tuple[str, ...]] = {
    "infusions": (".csv", ".xlsx", ".parquet"),
    "labs": (".csv", ".xlsx", ".parquet"),
    "reviews": (".csv", ".xlsx", ".parquet"),
    "mapping": (".csv",),
}
REQUIRED_KINDS = ("infusions",)
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", ".lock")
#: errno values a network share or a busy disk gives for a moment; worth a retry.
TRANSIENT_ERRNOS = frozenset(
    code
    for code in (
        errno.EAGAIN,
        errno.EBUSY,
        errno.ETIMEDOUT,
        errno.EIO,
        errno.EINTR,
        getattr(errno, "ESTALE", None),
        getattr(errno, "ETXTBSY", None),
    )
    if code is not None
)
STAGING_SUFFIX = ".partial"
#: The scheduled audit's defaults: 06:00 on the 2nd of each month, for the previous month.
DEFAULT_CRON = "0 6 2 * *"
DEFAULT_DEPLOYMENT = "monthly"


class DropFolderError(Exception):
    """The drop folder can't give a usable set of exports (bad input, not retried)."""


class FileStillBeingWritten(OSError):
    """An export changed moments ago; the pharmacy system may still be writing it (retried)."""

    def __init__(self, path: Path, age_s: float) -> None:
        super().__init__(errno.EBUSY, f"modified {age_s:.0f} s ago, may still be being written", str(path))


def is_transient_fs_error(exc: BaseException | None) -> bool:
    """True for file-system errors that may go away by themselves (busy, locked, timed out, I/O)."""
    if isinstance(exc, BlockingIOError | InterruptedError | TimeoutError | FileStillBeingWritten):
        return True
    return isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS


# ---------------------------------------------------------------- period and names


def previous_month(today: date) -> tuple[date, date]:
    """The calendar month before ``today``'s: (first day, last day)."""
    year, month = (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def resolve_period(today: date, start: date | None, end: date | None) -> tuple[date, date]:
    """The run's period: the given dates, else the previous calendar month (a lone date completes it)."""
    default_start, default_end = previous_month(today)
    if start is None and end is None:
        return default_start, default_end
    if start is None:
        assert end is not None
        start = end.replace(day=1)
    if end is None:
        end = start.replace(day=calendar.monthrange(start.year, start.month)[1])
    return start, end


def period_label(start: date, end: date) -> str:
    """``2026-10`` for a whole calendar month, else ``2026-10-05_2026-10-20``."""
    last = calendar.monthrange(start.year, start.month)[1]
    if start.day == 1 and end == start.replace(day=last):
        return f"{start:%Y-%m}"
    return f"{start.isoformat()}_{end.isoformat()}"


def run_folder_name(started_at: datetime, start: date, end: date, run_id: str | None = None) -> str:
    """``<run date>_<period>_<HHMMSS>[-<short run id>]``, e.g. ``2026-11-02_2026-10_060000-1a2b3c4d``."""
    suffix = f"{started_at:%H%M%S}" + (f"-{run_id.replace('-', '')[:8]}" if run_id else "")
    return f"{started_at:%Y-%m-%d}_{period_label(start, end)}_{suffix}"


def staging_folder(final: Path) -> Path:
    """The hidden sibling a run is built in before it is renamed to ``final``."""
    return final.with_name(f".{final.name}{STAGING_SUFFIX}")


# ---------------------------------------------------------------- drop folder


def is_candidate(name: str) -> bool:
    """Could this file be an export (not hidden, not a lock file, not a partial/temporary file)?"""
    lower = name.lower()
    return not (lower.startswith((".", "~$")) or lower.endswith(PARTIAL_SUFFIXES))


def kind_of(name: str) -> str | None:
    """The export kind a file name announces, or None."""
    lower = name.lower()
    if not is_candidate(name):
        return None
    for kind, extensions in EXPORT_KINDS.items():
        if lower.startswith(kind) and lower.endswith(extensions):
            return kind
    return None


def select_exports(entries: Iterable[tuple[str, float]]) -> dict[str, str]:
    """From (file name, mtime) pairs: the newest file name of each kind (ties: the later name)."""
    best: dict[str, tuple[float, str]] = {}
    for name, mtime in entries:
        kind = kind_of(name)
        if kind is not None and (kind not in best or (mtime, name) > best[kind]):
            best[kind] = (mtime, name)
    return {kind: best[kind][1] for kind in EXPORT_KINDS if kind in best}


@dataclass(frozen=True)
class DropSelection:
    """The files a run uses, by kind, with their modification times (ISO, local)."""

    folder: Path
    files: dict[str, Path]
    modified: dict[str, str]

    def path(self, kind: str) -> Path | None:
        return self.files.get(kind)


def resolve_drop_folder(folder: Path, *, settle_seconds: float = 0.0, now: float | None = None) -> DropSelection:
    """Pick the newest export of each kind in ``folder``.

    Raises DropFolderError when the folder is missing or holds no infusion export, and
    FileStillBeingWritten when a chosen file changed less than ``settle_seconds`` ago.
    """
    if not folder.is_dir():
        raise DropFolderError(f"{folder}: drop folder not found")
    entries = [(e.name, e.stat().st_mtime) for e in os.scandir(folder) if e.is_file()]
    chosen = select_exports(entries)
    missing = [k for k in REQUIRED_KINDS if k not in chosen]
    if missing:
        wanted = ", ".join(f"{k}*{'|'.join(EXPORT_KINDS[k])}" for k in missing)
        raise DropFolderError(f"{folder}: no export found for {', '.join(missing)} (expected a file named {wanted})")
    mtimes = dict(entries)
    clock = time.time() if now is None else now
    for name in chosen.values():
        age_s = clock - mtimes[name]
        if age_s < settle_seconds:
            raise FileStillBeingWritten(folder / name, max(age_s, 0.0))
    return DropSelection(
        folder=folder,
        files={kind: folder / name for kind, name in chosen.items()},
        modified={
            kind: datetime.fromtimestamp(mtimes[name]).isoformat(timespec="seconds") for kind, name in chosen.items()
        },
    )


# ---------------------------------------------------------------- run folder


def prepare_staging(final: Path) -> Path:
    """Create the empty hidden staging folder for ``final`` (its parent is created if missing)."""
    if final.exists():
        raise FileExistsError(errno.EEXIST, "run folder already exists", str(final))
    staging = staging_folder(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    if staging.exists():  # a crashed attempt of this very run: start clean
        shutil.rmtree(staging)
    staging.mkdir()
    return staging


def publish(staging: Path, final: Path) -> Path:
    """Rename the finished staging folder to its final name (atomic on one file system)."""
    if final.exists():
        raise FileExistsError(errno.EEXIST, "run folder already exists", str(final))
    os.rename(staging, final)
    with contextlib.suppress(OSError):  # make the rename durable where the platform allows it
        fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return final


def discard(staging: Path) -> None:
    """Remove an unfinished staging folder (a failed run leaves nothing behind)."""
    shutil.rmtree(staging, ignore_errors=True)
