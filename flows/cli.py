"""``ivig-audit``: the command line. A thin layer: parse, check, run the flow, report.

Exit status: 0 the audit ran (with or without exceptions), 2 bad input or
configuration, 1 an internal error. Messages name files, lines and columns, never a
patient identifier.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from flows.schedule import DEFAULT_CRON, DEFAULT_DEPLOYMENT
from report.model import DEFAULT_MAX_DETAIL_ROWS

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2


class UsageError(Exception):
    """A problem with the command's arguments or settings, shown as ``Error: ...``."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def _datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date-time (expected ISO 8601)") from None


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivig-audit",
        description="Audit IVIG courses for dermatomyositis against a versioned guideline profile.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="audit pharmacy exports and write the reports")
    run.add_argument(
        "--infusions",
        required=True,
        type=Path,
        metavar="FILE",
        help="infusion export (.csv, .xlsx or .parquet), one row per administered dose",
    )
    run.add_argument("--labs", type=Path, metavar="FILE", help="IgA results (.csv, .xlsx or .parquet)")
    run.add_argument("--reviews", type=Path, metavar="FILE", help="documented reassessments (.csv, .xlsx or .parquet)")
    run.add_argument(
        "--mapping",
        type=Path,
        metavar="FILE",
        help="column mapping for a site's own names (CSV with columns source,canonical)",
    )
    run.add_argument(
        "--guideline",
        default="mayo-2013",
        metavar="NAME_OR_FILE",
        help="guideline profile name or path to a profile .toml (default: mayo-2013)",
    )
    run.add_argument(
        "--period-start", type=_date, metavar="DATE", help="report cycles starting on or after this date (YYYY-MM-DD)"
    )
    run.add_argument(
        "--period-end", type=_date, metavar="DATE", help="report cycles starting on or before this date (YYYY-MM-DD)"
    )
    run.add_argument(
        "--pseudonymize",
        action="store_true",
        help="replace patient identifiers in every output by a keyed hash (key in IVIG_AUDIT_PSEUDONYM_KEY)",
    )
    run.add_argument(
        "--price-per-gram",
        type=_non_negative,
        metavar="AMOUNT",
        help="IVIG price per gram, to cost the excess grams (default: the profile's, if any)",
    )
    run.add_argument(
        "--max-detail-rows",
        type=_positive_int,
        default=DEFAULT_MAX_DETAIL_ROWS,
        metavar="N",
        help="most rows per workbook detail sheet; the CSV files are always complete (default: %(default)s)",
    )
    run.add_argument(
        "--partitions",
        type=_positive_int,
        metavar="N",
        help="audit in N patient partitions on a local Dask cluster (for very large audits; same results)",
    )
    run.add_argument(
        "--dask-address",
        metavar="ADDR",
        help="run the partitions on the Dask cluster whose scheduler is at ADDR (e.g. tcp://10.0.0.5:8786)",
    )
    run.add_argument(
        "--as-of",
        type=_datetime,
        metavar="DATETIME",
        help="the run's 'now': rows later than this are rejected as future (default: the clock)",
    )
    run.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the reports")
    run.add_argument(
        "--verbose", action="store_true", help="also show Prefect's own log lines (default: warnings and errors only)"
    )

    serve = sub.add_parser(
        "serve", help="serve the scheduled audit on a cron schedule (runs until stopped; needs a Prefect server)"
    )
    serve.add_argument(
        "--drop-folder", required=True, type=Path, metavar="DIR", help="folder the pharmacy system exports into"
    )
    serve.add_argument(
        "--output-root", required=True, type=Path, metavar="DIR", help="each run writes a dated folder under here"
    )
    serve.add_argument("--guideline", default="mayo-2013", metavar="NAME_OR_FILE", help="default: mayo-2013")
    serve.add_argument(
        "--cron", default=DEFAULT_CRON, metavar="EXPR", help="when to run (default: %(default)s, 06:00 on the 2nd)"
    )
    serve.add_argument(
        "--timezone", default=None, metavar="TZ", help="IANA time zone of the schedule (default: this machine's)"
    )
    serve.add_argument("--name", default=DEFAULT_DEPLOYMENT, help="deployment name (default: %(default)s)")
    serve.add_argument("--pseudonymize", action="store_true", help="as for run (key in IVIG_AUDIT_PSEUDONYM_KEY)")
    serve.add_argument(
        "--settle-seconds",
        type=_non_negative,
        default=60.0,
        metavar="S",
        help="an export changed less than S seconds ago is still being written: wait and retry (default: 60)",
    )

    sub.add_parser("profiles", help="list the packaged guideline profiles")
    rules = sub.add_parser("rules", help="print the rule table of a guideline profile")
    rules.add_argument("--guideline", default="mayo-2013", metavar="NAME_OR_FILE")
    return parser


def _preflight(args: argparse.Namespace) -> None:
    """Cheap checks before paying Prefect's start-up: files exist, settings make sense."""
    from audit.guideline import GuidelineError
    from validators.guideline_source import load_guideline

    for flag, path in (
        ("--infusions", args.infusions),
        ("--labs", args.labs),
        ("--reviews", args.reviews),
        ("--mapping", args.mapping),
    ):
        if path is not None and not path.is_file():
            raise UsageError(f"{path}: file not found ({flag})")
    try:
        load_guideline(args.guideline)
    except GuidelineError as exc:
        raise UsageError(str(exc)) from None
    from flows.steps import ConfigError, RunConfig

    try:  # the same checks the flow makes, before paying for Prefect
        RunConfig(
            infusions=args.infusions,
            out_dir=args.out,
            period_start=args.period_start,
            period_end=args.period_end,
            pseudonymize=args.pseudonymize,
            price_per_g=args.price_per_gram,
            max_detail_rows=args.max_detail_rows,
        ).check()
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _print_summary(summary: dict[str, Any], out: Path) -> None:
    rec = summary["reconciliation"]
    exc = summary["exceptions"]
    sev = exc["by_severity"]
    print(
        f"Rows read {rec['rows_read']}: audited {rec['rows_audited']}, out of scope {rec['rows_out_of_scope']}, "
        f"rejected {rec['rows_rejected']}, duplicate {rec['rows_duplicate']}"
    )
    aud = summary["audited"]
    print(f"Audited {aud['patients']} patients, {aud['courses']} courses, {aud['cycles']} cycles")
    print(f"Exceptions: {exc['total']} (high {sev['high']}, medium {sev['medium']}, low {sev['low']})")
    print(f"Reports written to {out}")


def _quiet_prefect_defaults(verbose: bool = False) -> None:
    """Defaults set before Prefect is imported; the user's own settings win."""
    import os

    # Prefect's server phones home for usage analytics; hospitals' batch hosts have no reason to.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect's console lines (run names, state changes) clutter a terminal and a cron mail; only the
    # console handler is raised, so the run's INFO lines still reach a Prefect server's UI.
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "WARNING")


def cmd_run(args: argparse.Namespace) -> int:
    _preflight(args)
    _quiet_prefect_defaults(args.verbose)
    from flows.audit_flow import BAD_CONFIG, BAD_INPUT, audit_flow
    from flows.progress import step_progress, wants_progress

    generated_at = args.as_of or datetime.now().replace(microsecond=0)
    with step_progress(wants_progress() and not args.verbose):
        state = audit_flow(
            infusions=str(args.infusions),
            out_dir=str(args.out),
            labs=str(args.labs) if args.labs else None,
            reviews=str(args.reviews) if args.reviews else None,
            mapping=str(args.mapping) if args.mapping else None,
            guideline=args.guideline,
            period_start=args.period_start,
            period_end=args.period_end,
            pseudonymize=args.pseudonymize,
            price_per_g=args.price_per_gram,
            max_detail_rows=args.max_detail_rows,
            generated_at=generated_at,
            partitions=args.partitions,
            dask_address=args.dask_address,
            return_state=True,
        )
    if state.is_completed():
        summary: dict[str, Any] = state.result()  # type: ignore[assignment]  # the flow's Completed(data=summary)
        _print_summary(summary, args.out)
        return EXIT_OK
    message = state.message or ""
    for prefix in (BAD_INPUT, BAD_CONFIG):
        if message.startswith(prefix):
            print(f"Error: {message.removeprefix(prefix)}", file=sys.stderr)
            return EXIT_BAD_INPUT
    print(
        "Internal error: the audit did not finish (see the Prefect flow run's logs). "
        "No report was written under its final name.",
        file=sys.stderr,
    )
    return EXIT_INTERNAL


def local_timezone() -> str:
    """This machine's IANA time zone name (TZ, else /etc/localtime's link), or UTC."""
    import os

    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            target = os.readlink("/etc/localtime")
        except OSError:
            target = ""
        name = target.split("zoneinfo/", 1)[1] if "zoneinfo/" in target else "UTC"
    return name


def cmd_serve(args: argparse.Namespace) -> int:
    """Register the scheduled audit as a deployment and run it on its schedule until stopped."""
    import os
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from audit.guideline import GuidelineError
    from flows.steps import PSEUDONYM_KEY_ENV
    from validators.guideline_source import load_guideline

    if not args.drop_folder.is_dir():
        raise UsageError(f"{args.drop_folder}: drop folder not found (--drop-folder)")
    try:
        load_guideline(args.guideline)
    except GuidelineError as exc:
        raise UsageError(str(exc)) from None
    timezone = args.timezone or local_timezone()
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise UsageError(f"--timezone {timezone!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    if args.pseudonymize and not os.environ.get(PSEUDONYM_KEY_ENV):
        raise UsageError(f"--pseudonymize needs a key in the environment variable {PSEUDONYM_KEY_ENV}")
    _quiet_prefect_defaults(verbose=True)  # a long-running service: its log is the record
    from prefect.schedules import Cron

    from flows.scheduled import scheduled_audit_flow

    try:
        schedule = Cron(args.cron, timezone=timezone)
    except ValueError as exc:
        raise UsageError(f"--cron {args.cron!r}: {exc}") from None
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "Note: PREFECT_API_URL is not set; runs are recorded in a temporary Prefect server that ends with "
            "this command. Point PREFECT_API_URL at a Prefect server to keep the history.",
            file=sys.stderr,
        )
    scheduled_audit_flow.serve(
        name=args.name,
        schedules=[schedule],
        parameters={
            "drop_folder": str(args.drop_folder.resolve()),
            "output_root": str(args.output_root.resolve()),
            "guideline": args.guideline,
            "pseudonymize": args.pseudonymize,
            "settle_seconds": args.settle_seconds,
        },
        description="IVIG audit of the newest drop-folder exports for the previous calendar month",
        tags=["ivig-audit"],
    )
    return EXIT_OK


def cmd_profiles(args: argparse.Namespace) -> int:
    from validators.guideline_source import load_guideline, packaged_profiles

    for name in packaged_profiles():
        g = load_guideline(name)
        print(f"{name}\t{g.profile.version}\t{g.profile.title}")
    return EXIT_OK


def cmd_rules(args: argparse.Namespace) -> int:
    from audit.guideline import GuidelineError
    from validators.guideline_source import load_guideline

    try:
        g = load_guideline(args.guideline)
    except GuidelineError as exc:
        raise UsageError(str(exc)) from None
    print("code\tseverity\tparameters\tdescription")
    for code in g.enabled_rules():
        rule = g.rules[code]
        params = ", ".join(f"{p}={g.value(p):g} {g.parameters[p].unit}" for p in rule.parameters)
        print(f"{code}\t{rule.severity}\t{params}\t{rule.description}")
    return EXIT_OK


COMMANDS = {"run": cmd_run, "serve": cmd_serve, "profiles": cmd_profiles, "rules": cmd_rules}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: never print data, only the kind of failure
        print(f"Internal error ({exc.__class__.__name__}); please report it with the command you ran.", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
