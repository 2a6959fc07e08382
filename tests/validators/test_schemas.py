"""The pandera schemas of the typed frames, and the quarantine machinery's own guarantees."""

from __future__ import annotations

from datetime import date

import pandera.polars as pa
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pandera.config import config_context
from pandera.errors import SchemaErrors

from audit.frames import CYCLES, FINDINGS, INFUSIONS, LABS, REVIEWS
from validators.quarantine import Field, Problem, _check_output, duplicate_rows, find_problems, repeated_hashes
from validators.schemas import (
    CYCLES_SCHEMA,
    FINDINGS_SCHEMA,
    INFUSIONS_SCHEMA,
    LABS_SCHEMA,
    REVIEWS_SCHEMA,
)


@pytest.mark.parametrize(
    ("schema", "frame"),
    [
        (INFUSIONS_SCHEMA, INFUSIONS),
        (LABS_SCHEMA, LABS),
        (REVIEWS_SCHEMA, REVIEWS),
        (FINDINGS_SCHEMA, FINDINGS),
        (CYCLES_SCHEMA, CYCLES),
    ],
    ids=["infusions", "labs", "reviews", "findings", "cycles"],
)
def test_schema_has_exactly_the_frame_columns(schema: pa.DataFrameSchema, frame: dict[str, pl.DataType]) -> None:
    """Each schema lists the frame's columns in order and accepts an empty frame of that shape."""
    assert list(schema.columns) == list(frame)
    assert schema.validate(pl.DataFrame(schema=frame)).height == 0


def test_schema_rejects_a_wrong_dtype() -> None:
    """A column with another dtype fails the schema (strict dtypes)."""
    frame = pl.DataFrame(schema={**REVIEWS, "reviewed_on": pl.String()})
    with pytest.raises(SchemaErrors):
        REVIEWS_SCHEMA.validate(frame, lazy=True)


def _finding(**changes: object) -> pl.DataFrame:
    row: dict[str, object] = {
        "rule_code": "DOSE_ABOVE_MAX",
        "severity": "high",
        "patient_id": "P1",
        "course_id": "P1-C1",
        "cycle_number": 1,
        "cycle_start": date(2025, 3, 4),
        "observed": 2.5,
        "limit": 2.1,
        "unit": "g/kg",
        "excess_g": 20.0,
        "message": "m",
        "admin_ids": ["A1"],
        **changes,
    }
    return pl.DataFrame([row], schema=FINDINGS)


def test_findings_schema_accepts_a_finding() -> None:
    """A well-formed finding passes FINDINGS_SCHEMA."""
    assert FINDINGS_SCHEMA.validate(_finding()).height == 1


@pytest.mark.parametrize(
    "changes",
    [{"severity": "urgent"}, {"rule_code": "NOT_A_RULE"}, {"cycle_number": 0}, {"patient_id": None}],
)
def test_findings_schema_rejects_bad_values(changes: dict[str, object]) -> None:
    """Unknown severities or rule codes, cycle 0 and a missing patient fail FINDINGS_SCHEMA."""
    with pytest.raises(SchemaErrors):
        FINDINGS_SCHEMA.validate(_finding(**changes), lazy=True)


def test_row_checks_report_every_failing_row() -> None:
    """find_problems gives each failing row all its reasons, in field order."""
    staged = pl.DataFrame({"a": [1.0, -1.0, None], "b": ["x", "y", "x"]})
    fields = [
        Field(
            "a",
            pl.Float64(),
            missing=pl.lit("a missing"),
            problems=(Problem(pa.Check.gt(0, error="a>0"), pl.lit("a<=0")),),
        ),
        Field("b", pl.String(), problems=(Problem(pa.Check.isin(["x"], error="b in x"), pl.lit("b bad")),)),
    ]
    assert find_problems(staged, fields).rows() == [(1, "a<=0; b bad"), (2, "a missing")]


def test_structural_failure_is_not_swallowed() -> None:
    """A staging column of the wrong dtype is a bug: it raises instead of passing or dropping rows."""
    staged = pl.DataFrame({"a": ["1"]})
    with pytest.raises(RuntimeError, match="whole columns"):
        find_problems(staged, [Field("a", pl.Float64())])


def test_row_checks_run_even_when_pandera_is_disabled() -> None:
    """Switching pandera validation off (config or PANDERA_VALIDATION_ENABLED) can't switch the quarantine off."""
    staged = pl.DataFrame({"a": [-1.0]})
    fields = [Field("a", pl.Float64(), problems=(Problem(pa.Check.gt(0, error="a>0"), pl.lit("a<=0")),))]
    with config_context(validation_enabled=False):
        assert find_problems(staged, fields).rows() == [(0, "a<=0")]


def _infusion_frame(admin_ids: list[str]) -> pl.DataFrame:
    n = len(admin_ids)
    values: dict[str, list[object]] = {
        "source_file": ["f.csv"] * n,
        "source_row": list(range(2, n + 2)),
        "admin_id": admin_ids,
    }
    for name in INFUSIONS:
        values.setdefault(name, [None] * n)
    frame = pl.DataFrame(values).with_columns(
        pl.lit("P1").alias("patient_id"),
        pl.lit("2025-03-04 09:00").str.to_datetime("%Y-%m-%d %H:%M", time_unit="us").alias("administered_at"),
        pl.lit(date(2025, 3, 4)).alias("administered_on"),
        pl.lit("Privigen").alias("product"),
        pl.lit(30.0).alias("dose_g"),
        pl.lit(70.0).alias("weight_kg"),
        pl.lit("dermatomyositis").alias("indication"),
    )
    return frame.select(pl.col(name).cast(dtype) for name, dtype in INFUSIONS.items())


def test_output_check_finds_a_repeated_unique_value_without_quoting_it() -> None:
    """The typed frame's own check catches a repeated admin_id (hash first, then exact) and names no value."""
    _check_output(_infusion_frame(["A1", "A2", "A3"]), INFUSIONS_SCHEMA)
    with pytest.raises(RuntimeError, match="admin_id/field_uniqueness") as caught:
        _check_output(_infusion_frame(["A1", "SECRET-7", "SECRET-7"]), INFUSIONS_SCHEMA)
    assert "SECRET" not in str(caught.value)


def test_duplicate_rows_marks_later_copies_only() -> None:
    """The first copy stays; narrowing by candidates gives the same marks when every repeat is a candidate."""
    table = pl.DataFrame(
        {
            "source_file": ["f"] * 6,
            "source_row": [2, 3, 4, 5, 6, 7],
            "a": ["x", "y", "x", "x", None, None],
            "b": ["1", "1", "1", "2", None, None],
        }
    )
    expected = [False, False, True, False, False, True]
    assert duplicate_rows(table).to_list() == expected
    candidates = table.select(pl.col("a").hash().is_duplicated()).to_series()
    assert duplicate_rows(table, candidates).to_list() == expected
    assert not duplicate_rows(table.head(0)).any()


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.sampled_from(["A1", "A2", "A3", " A1", ""])), max_size=30))
def test_repeated_hashes_marks_every_repeated_value(values: list[str | None]) -> None:
    """Every row whose value (or null) is on another row too is marked, and no other row."""
    series = pl.Series("admin_id", values, dtype=pl.String)
    assert repeated_hashes(series).to_list() == series.is_duplicated().to_list()
