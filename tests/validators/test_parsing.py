"""validators.parsing: parsing once per distinct value, and trimming only what needs it."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from validators import parsing as p

#: Values that parse, fail to parse, repeat, are blank or padded.
TEXTS = st.one_of(
    st.none(),
    st.sampled_from(["1", " 1 ", "1.5", "-2", "1e3", "1,5", "nan", "x", "2025-03-04", "2025-03-04 09:30", "mg", " MG"]),
    st.text(alphabet="0123456789 .:-eE", max_size=8),
)

PARSERS = {
    "a": p.number("a"),
    "b": p.local_datetime("b"),
    "c": p.code("c", {"mg": "mg", "g": "g"}),
}


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(TEXTS, TEXTS, TEXTS), max_size=40))
def test_per_distinct_equals_parsing_every_row(rows: list[tuple[str | None, str | None, str | None]]) -> None:
    """Each column's values, parsed once per distinct value, equal the parser run on every row."""
    table = pl.DataFrame(rows, schema={"a": pl.String, "b": pl.String, "c": pl.String}, orient="row")
    got = p.per_distinct(table, PARSERS)
    expected = table.select(parser.alias(column) for column, parser in PARSERS.items())
    for column in PARSERS:
        assert got[column].name == column
        assert got[column].equals(expected.get_column(column), null_equal=True), column


def test_per_distinct_keeps_columns_apart() -> None:
    """The same text in two columns is parsed by each column's own parser."""
    table = pl.DataFrame({"a": ["1", "g", "1"], "c": ["g", "1", "1"]})
    got = p.per_distinct(table, {"a": PARSERS["a"], "c": PARSERS["c"]})
    assert got["a"].to_list() == [1.0, None, 1.0]
    assert got["c"].to_list() == ["g", "1", "1"]


def test_trimmed_trims_only_columns_with_space_to_trim() -> None:
    """A column with a padded value is trimmed; the others are taken as they are."""
    table = pl.DataFrame({"x": ["A1", "A2 "], "y": ["\tB", "C"], "z": ["D", None]})
    exprs = p.trimmed(table, ("x", "y", "z"))
    assert table.select(exprs).rows() == [("A1", "B", "D"), ("A2", "C", None)]
    assert [str(e) for e in exprs][2] == str(pl.col("z"))
