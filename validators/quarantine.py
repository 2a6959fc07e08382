"""Row checks with pandera, and the quarantine of rows that fail them.

A loader parses a file into a *staging* frame: typed columns next to raw
copies of what the user wrote. It declares its row checks as ``Field``s: a
staging column, whether it is required, and pandera checks, each paired with
the reason text a failing row gets. ``find_problems`` runs the pandera schema
once (eager frame, ``lazy=True``), reads ``SchemaErrors.failure_cases`` and
writes every row's reasons, all problems of a row joined with ``"; "``.

pandera imports its polars backend (and, when installed, hypothesis, for its data
synthesis) on the first validation, not on ``import pandera.polars``: 0.15-0.2 s that
the first file's validation paid. The backend is imported here, with this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandera.backends.polars.builtin_checks
import pandera.backends.polars.container  # noqa: F401 (imported for its cost at start-up: see above)
import pandera.polars as pa
import polars as pl
from pandera.api.polars.types import PolarsData
from pandera.config import config_context
from pandera.errors import SchemaError, SchemaErrors

from validators.errors import InputError
from validators.io import KEY_COLUMNS, Loaded
from validators.parsing import raw

#: Row position in the staging frame (pandera's failure-case ``index``).
ROW = "_row"
_NOT_NULLABLE = "not_nullable"


@dataclass(frozen=True)
class Problem:
    """A pandera check on a staging column and the reason a failing row gets.

    The check's ``error`` is its key in ``failure_cases``: unique within the column.
    """

    check: pa.Check
    reason: pl.Expr


@dataclass(frozen=True)
class Field:
    """One staging column under row checks.

    ``missing`` is the reason when the value is null (the column is then
    non-nullable for pandera); ``None`` means the value is optional.
    """

    name: str
    dtype: pl.DataType
    missing: pl.Expr | None = None
    problems: tuple[Problem, ...] = field(default=())


# --------------------------------------------------------- custom checks
# Small vectorized checks for what the built-ins can't say: they compare a
# column with another one. Each returns one boolean per row (True = passes).
def _parsed_if_written(data: PolarsData, written: str) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(written).is_null() | pl.col(data.key).is_not_null())


def _present_if(data: PolarsData, other: str) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col(other).is_null() | pl.col(data.key).is_not_null())


def _not_after(data: PolarsData, other: str) -> pl.LazyFrame:
    column, bound = pl.col(data.key), pl.col(other)
    return data.lazyframe.select(column.is_null() | bound.is_null() | (column <= bound))


def parsed_if_written(column: str, key: str) -> pa.Check:
    """Fails where ``column``'s raw text is present but didn't parse (for optional columns)."""
    return pa.Check(_parsed_if_written, written=raw(column), ignore_na=False, error=key)


def present_if(other: str, key: str) -> pa.Check:
    """Fails where ``other`` has a value and this column has none (a unit without its number)."""
    return pa.Check(_present_if, other=other, ignore_na=False, error=key)


def not_after(other: str, key: str) -> pa.Check:
    """Fails where this column's value is later than ``other``'s (nulls pass)."""
    return pa.Check(_not_after, other=other, ignore_na=False, error=key)


# --------------------------------------------------------- schema and run
def row_schema(fields: Sequence[Field]) -> pa.DataFrameSchema:
    """The pandera schema that runs the row checks of ``fields``."""
    columns: dict[str, pa.Column] = {}
    for spec in fields:
        keys = [problem.check.error for problem in spec.problems]
        if None in keys or len(set(keys)) != len(keys):
            raise ValueError(f"{spec.name}: every check needs a unique error key")
        columns[spec.name] = pa.Column(
            spec.dtype,
            nullable=spec.missing is None,
            checks=[problem.check for problem in spec.problems],
        )
    return pa.DataFrameSchema(columns, strict=False, name="row checks")


def find_problems(staged: pl.DataFrame, fields: Sequence[Field]) -> pl.DataFrame:
    """Reasons for the rows of ``staged`` that fail the row checks.

    Returns ``(_row: UInt32, reason: String)``, one row per failing staging
    row, ``_row`` being its position in ``staged``. A failure that isn't about
    rows (a wrong dtype, a broken check) is a bug and raises RuntimeError.
    """
    empty = pl.DataFrame(schema={ROW: pl.UInt32, "reason": pl.String})
    if staged.height == 0:
        return empty
    try:
        # Whatever PANDERA_* says in the environment: the quarantine must always run on the data.
        with config_context(validation_enabled=True, validation_depth="SCHEMA_AND_DATA"):
            row_schema(fields).validate(staged, lazy=True)
    except SchemaErrors as errors:
        failures = errors.failure_cases
    else:
        return empty

    if not isinstance(failures, pl.DataFrame) or not {"column", "check", "index"} <= set(failures.columns):
        raise RuntimeError("row checks: unexpected failure-case format from pandera")
    keyed = failures.select(
        pl.col("index").cast(pl.UInt32).alias(ROW),
        pl.concat_str(pl.col("column"), pl.lit("\x1f"), pl.col("check")).alias("key"),
    )
    general = failures.filter(pl.col("index").is_null())
    if general.height:
        what = ", ".join(sorted(set(general.get_column("column").cast(pl.String).fill_null("?").to_list())))
        raise RuntimeError(f"row checks failed on whole columns, not rows ({what}): a bug in the staging frame")

    ordinal: dict[str, int] = {}
    reasons: list[pl.Expr] = []
    for spec in fields:
        if spec.missing is not None:
            ordinal[f"{spec.name}\x1f{_NOT_NULLABLE}"] = len(reasons)
            reasons.append(spec.missing)
        for problem in spec.problems:
            ordinal[f"{spec.name}\x1f{problem.check.error}"] = len(reasons)
            reasons.append(problem.reason)
    keyed = keyed.with_columns(
        pl.col("key").replace_strict(ordinal, default=None, return_dtype=pl.Int64).alias("ordinal")
    )
    if keyed.get_column("ordinal").null_count():
        raise RuntimeError("row checks: a failure from a check no Field declares")

    rows = keyed.get_column(ROW).unique().sort()
    failing = staged.with_row_index(ROW).filter(pl.col(ROW).is_in(rows.implode()))
    parts: list[pl.Expr] = []
    for (number,), group in sorted(keyed.partition_by("ordinal", as_dict=True).items()):
        hit = failing.get_column(ROW).is_in(group.get_column(ROW).implode())
        parts.append(pl.when(pl.lit(hit)).then(reasons[int(number)]).otherwise(None))
    return failing.select(
        pl.col(ROW),
        pl.concat_str(parts, separator="; ", ignore_nulls=True).alias("reason"),
    )


# --------------------------------------------------------- the common steps
def original_columns(table: pl.DataFrame) -> list[str]:
    """The file's own columns (everything but source_file and source_row)."""
    return [c for c in table.columns if c not in KEY_COLUMNS]


def require_columns(table: pl.DataFrame, required: Sequence[str], path: Path) -> None:
    """InputError naming every required column the file lacks."""
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(str(path), f"missing required columns: {', '.join(missing)}")


def duplicate_rows(table: pl.DataFrame, candidates: pl.Series | None = None) -> pl.Series:
    """True for each later copy of a row whose original values all equal an earlier row's.

    The first copy (lowest position, so lowest source_row) stays False. ``candidates``
    (a boolean mask) may narrow the search to rows that could repeat, e.g. rows whose
    key column's value repeats: every exact duplicate must be among them.
    """
    columns = original_columns(table)
    none = pl.repeat(False, table.height, dtype=pl.Boolean, eager=True).alias("duplicate")
    if not columns or table.height == 0:
        return none
    # Hashes find the candidates cheaply; the exact comparison runs on those rows only.
    rows = table if candidates is None else table.filter(candidates)
    if rows.height < 2:
        return none
    repeated_hash = rows.select(pl.struct(columns).hash().is_duplicated()).to_series()
    if not repeated_hash.any():
        return none
    positions = pl.int_range(table.height, dtype=pl.UInt32, eager=True)
    if candidates is not None:
        positions = positions.filter(candidates)
    positions = positions.filter(repeated_hash)
    later = rows.filter(repeated_hash).select(pl.struct(columns).is_first_distinct().not_()).to_series()
    return none.scatter(positions.filter(later), True)


def repeated_hashes(values: pl.Series) -> pl.Series:
    """True for each value whose hash is on another row too (every repeated value, nulls included).

    By sorting the hashes and comparing neighbours: 10M ids 0.5 s against 1.0-2.4 s for
    polars' ``is_duplicated``, whose hash table of 10M entries misses the cache; the same at 1M.
    """
    hashes = values.hash()
    order = hashes.arg_sort()
    ordered = hashes.gather(order)
    repeated = (ordered == ordered.shift(1)).fill_null(False) | (ordered == ordered.shift(-1)).fill_null(False)
    return pl.repeat(False, values.len(), dtype=pl.Boolean, eager=True).scatter(order, repeated)


def with_optional(table: pl.DataFrame, optional: Sequence[str]) -> pl.DataFrame:
    """Add the optional columns the file lacks, as null text."""
    absent = [c for c in optional if c not in table.columns]
    return table.with_columns(pl.lit(None, dtype=pl.String).alias(c) for c in absent)


def raw_copies(columns: Sequence[str]) -> list[pl.Expr]:
    """Raw-text copies of ``columns`` for the staging frame (see ``parsing.raw``)."""
    return [pl.col(c).alias(raw(c)) for c in columns]


def quarantine(
    *,
    table: pl.DataFrame,
    staged: pl.DataFrame,
    reasons: pl.DataFrame,
    output: dict[str, pl.DataType],
    output_schema: pa.DataFrameSchema,
    duplicate: pl.Series,
    ignored: pl.Series | None = None,
) -> Loaded:
    """Split ``staged`` into the typed frame and the rejected rows.

    ``table`` is the file as read and ``staged`` its staging frame, row for row.
    ``reasons`` is ``(_row, reason)`` for the rows to reject; ``duplicate`` marks
    the later copies of exact duplicates (counted, never rejected) and ``ignored``
    rows that aren't this input's business (another lab test): neither is rejected,
    whatever its values.

    ``staged`` is consumed (left empty): its staging-only columns are released first
    and each output column is filtered and released in turn, so a big file's typed
    frame is never held twice (about 2 GB less at the peak of a 10M-row file).
    """
    dropped = duplicate if ignored is None else duplicate | ignored
    reason = (
        pl.repeat(None, staged.height, dtype=pl.String, eager=True)
        .scatter(reasons.get_column(ROW), reasons.get_column("reason"))
        .alias("reason")
    )
    has_reason = reason.is_not_null() & ~dropped
    is_good = ~(has_reason | dropped)
    for name in staged.columns:
        if name not in output:
            staged.drop_in_place(name)
    frame = pl.DataFrame([staged.drop_in_place(name).cast(dtype).filter(is_good) for name, dtype in output.items()])
    _check_output(frame, output_schema)
    rejected = table.filter(has_reason).with_columns(reason.filter(has_reason))
    rejected = rejected.select(*KEY_COLUMNS, "reason", *original_columns(table))
    rows_duplicate = int(duplicate.sum())
    loaded = Loaded(
        frame=frame,
        rejected=rejected,
        rows_read=table.height,
        rows_duplicate=rows_duplicate,
        rows_rejected=rejected.height,
        rows_ignored=int(dropped.sum()) - rows_duplicate,
    )
    accounted = loaded.frame.height + loaded.rows_duplicate + loaded.rows_rejected + loaded.rows_ignored
    if accounted != loaded.rows_read:
        raise RuntimeError(f"row accounting is off: read {loaded.rows_read}, accounted for {accounted}")
    return loaded


def _check_output(frame: pl.DataFrame, schema: pa.DataFrameSchema) -> None:
    """The typed frame must satisfy its contract; a failure here is a bug (no values in the message).

    pandera's own ``unique`` check compares the values of every row (0.3 s for a
    million ids); hashes are ten times cheaper, so unique columns are checked by
    hash first and compared exactly only when two hashes meet.
    """
    unique = [name for name, column in schema.columns.items() if column.unique]
    if unique:
        schema = schema.update_columns({name: {"unique": False} for name in unique})
    try:
        with config_context(validation_enabled=True, validation_depth="SCHEMA_AND_DATA"):
            schema.validate(frame, lazy=True)
    except (SchemaErrors, SchemaError) as exc:
        if isinstance(exc, SchemaErrors):
            cases = exc.failure_cases
            what = sorted({f"{c}/{k}" for c, k in cases.select("column", "check").unique().iter_rows()})
        else:
            what = [f"{getattr(exc.schema, 'name', '?')}/{exc.check}"]
        raise RuntimeError(f"{schema.name}: typed frame violates its schema ({', '.join(what)})") from None
    repeated = [name for name in unique if _has_repeats(frame.get_column(name))]
    if repeated:
        listed = ", ".join(f"{name}/field_uniqueness" for name in repeated)
        raise RuntimeError(f"{schema.name}: typed frame violates its schema ({listed})")


def _has_repeats(values: pl.Series) -> bool:
    """Whether a value occurs twice (nulls count as equal).

    Counting distinct hashes is the cheap common case (1M ids: 0.035 s against 0.08-0.12 s
    for marking the repeated ones); only when two hashes meet are the values compared.
    """
    hashes = values.hash()
    if hashes.n_unique() == hashes.len():
        return False
    return bool(values.filter(hashes.is_duplicated()).is_duplicated().any())
