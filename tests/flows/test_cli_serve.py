"""`ivig-audit serve` refuses bad settings before starting; the progress display stays quiet off a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from flows import cli
from flows.progress import wants_progress


def test_serve_without_drop_folder_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A drop folder that doesn't exist is refused with exit 2, naming it."""
    code = cli.main(["serve", "--drop-folder", str(tmp_path / "nope"), "--output-root", str(tmp_path / "out")])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"Error: {tmp_path / 'nope'}: drop folder not found (--drop-folder)"


def test_serve_with_unknown_timezone_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A time zone that isn't an IANA name is refused."""
    code = cli.main(
        ["serve", "--drop-folder", str(tmp_path), "--output-root", str(tmp_path / "o"), "--timezone", "Mars/Base"]
    )
    assert code == 2
    assert "--timezone 'Mars/Base' is not an IANA time zone" in capsys.readouterr().err


def test_serve_with_bad_cron_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A cron expression Prefect can't read is refused."""
    code = cli.main(
        ["serve", "--drop-folder", str(tmp_path), "--output-root", str(tmp_path / "o"), "--cron", "every month"]
    )
    assert code == 2
    assert "--cron 'every month'" in capsys.readouterr().err


def test_serve_defaults_to_the_2nd_of_each_month() -> None:
    """Without --cron the schedule is 06:00 on the 2nd of each month."""
    args = cli.build_parser().parse_args(["serve", "--drop-folder", "d", "--output-root", "o"])
    assert args.cron == "0 6 2 * *"
    assert args.name == "monthly"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """Progress shows on a terminal; CI, IVIG_AUDIT_NO_PROGRESS, TERM=dumb or a pipe silence it."""
    monkeypatch.setattr("sys.stdout", _Tty())
    assert wants_progress(_Tty(), {}) is True
    assert wants_progress(_Tty(), {"CI": "true"}) is False
    assert wants_progress(_Tty(), {"IVIG_AUDIT_NO_PROGRESS": "1"}) is False
    assert wants_progress(_Tty(), {"TERM": "dumb"}) is False
    assert wants_progress(io.StringIO(), {}) is False


def test_run_is_quiet_off_a_terminal(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """Off a terminal `run` prints only its four summary lines: no progress, no Prefect chatter."""
    sample = Path(__file__).resolve().parents[2] / "sample_data"
    code = cli.main(
        ["run", "--infusions", str(sample / "infusions.csv"), "--as-of", "2026-11-01T00:00:00", "--out", str(tmp_path)]
    )
    assert code == 0
    captured = capfd.readouterr()
    assert len(captured.out.strip().splitlines()) == 4
    assert captured.out.startswith("Rows read 5255")
    assert "Flow run" not in captured.err
    assert "✓" not in captured.err


def test_prefect_yaml_deploys_the_scheduled_flow_monthly() -> None:
    """prefect.yaml's deployment points at the scheduled flow, on a process pool, on the default cron."""
    import importlib

    import yaml

    from flows.schedule import DEFAULT_CRON

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text(encoding="utf-8"))
    (deployment,) = config["deployments"]
    module_path, function = deployment["entrypoint"].split(":")
    module = importlib.import_module(module_path.removesuffix(".py").replace("/", "."))
    assert getattr(module, function).name == "ivig-audit-scheduled"
    assert deployment["schedules"][0]["cron"] == DEFAULT_CRON
    assert {"drop_folder", "output_root", "guideline"} <= set(deployment["parameters"])
    assert set(deployment["parameters"]) <= set(getattr(module, function).parameters.properties)
    assert deployment["work_pool"]["name"]
