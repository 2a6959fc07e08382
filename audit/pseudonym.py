"""Keyed pseudonyms for patient identifiers (HMAC-SHA256), stable for the same key."""

from __future__ import annotations

import hashlib
import hmac

import polars as pl

PREFIX = "PS-"
HEX_CHARS = 16  # 64 bits: collisions are negligible for any hospital's patient count


def pseudonym(patient_id: str, key: bytes) -> str:
    """The pseudonym of one identifier (surrounding white space ignored)."""
    digest = hmac.new(key, patient_id.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return PREFIX + digest[:HEX_CHARS]


def pseudonymize_column(frame: pl.DataFrame, key: bytes, column: str = "patient_id") -> pl.DataFrame:
    """Replace ``column`` with pseudonyms; nulls and blanks stay as they are.

    HMAC runs once per distinct identifier (not per row), then a vectorized replace.
    """
    if column not in frame.columns or frame.height == 0:
        return frame
    distinct = frame.get_column(column).drop_nulls().unique().to_list()
    mapping = {value: (pseudonym(value, key) if value.strip() else value) for value in distinct}
    return frame.with_columns(pl.col(column).replace_strict(mapping, default=None, return_dtype=pl.String))
