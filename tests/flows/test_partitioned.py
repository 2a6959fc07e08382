"""The partitioned audit (Prefect + Dask, by patient) gives exactly the single-process result."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audit.engine import AuditResult, run_audit
from flows.partitioned import merge_results, partition_of, run_audit_partitioned, split_inputs
from validators.guideline_source import load_guideline
from validators.infusions import load_infusions
from validators.labs import load_labs
from validators.reviews import load_reviews

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"
NOW = datetime(2026, 11, 1)
GUIDELINE = load_guideline("mayo-2013")


@pytest.fixture(scope="module")
def tables() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    infusions = load_infusions(SAMPLE / "infusions.csv", GUIDELINE, now=NOW).frame
    labs = load_labs(SAMPLE / "labs.csv", now=NOW).frame
    reviews = load_reviews(SAMPLE / "reviews.csv", now=NOW).frame
    return infusions, labs, reviews


def assert_same(got: AuditResult, want: AuditResult) -> None:
    assert_frame_equal(got.findings, want.findings)
    assert_frame_equal(got.cycles, want.cycles)
    assert_frame_equal(got.out_of_scope, want.out_of_scope)
    assert got.counts == want.counts


def test_partition_numbers_are_stable_and_in_range() -> None:
    """A patient's partition is a fixed function of the id text (BLAKE2b), within 0..N-1."""
    ids = pl.Series(["P1", "P2", "P186481", "P1"])
    keys = partition_of(ids, 4)
    assert keys.get_column("patient_id").to_list() == ["P1", "P186481", "P2"]
    # Pinned values: a change here would move patients between runs and machines.
    assert keys.get_column("_partition").to_list() == [
        int.from_bytes(__import__("hashlib").blake2b(t.encode(), digest_size=8).digest(), "big") % 4
        for t in ("P1", "P186481", "P2")
    ]
    assert set(keys.get_column("_partition").to_list()) <= {0, 1, 2, 3}


def test_split_keeps_every_row_and_each_patient_in_one_partition(
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """Every row lands in exactly one partition, with all its patient's other rows."""
    infusions, labs, reviews = tables
    parts = split_inputs(infusions, labs, reviews, 5)
    assert sum(p.infusions.height for p in parts) == infusions.height
    patients = [set(p.infusions.get_column("patient_id").to_list()) for p in parts]
    assert sum(len(s) for s in patients) == len(set().union(*patients))
    for p, own in zip(parts, patients, strict=True):
        assert set(p.labs.get_column("patient_id").to_list()) <= own
        assert set(p.reviews.get_column("patient_id").to_list()) <= own


def test_merging_partitions_in_process_equals_run_audit(
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """Audit per partition then merge (no Dask) = one run_audit, with and without an audit period."""
    infusions, labs, reviews = tables
    for period in ((None, None), (date(2025, 1, 1), date(2025, 12, 31))):
        want = run_audit(infusions, labs, reviews, GUIDELINE, period_start=period[0], period_end=period[1])
        parts = [
            run_audit(p.infusions, p.labs, p.reviews, GUIDELINE, period_start=period[0], period_end=period[1])
            for p in split_inputs(infusions, labs, reviews, 7)
        ]
        assert_same(merge_results(parts), want)


def test_dask_run_is_identical_to_the_single_process_run(
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
) -> None:
    """Through Prefect's DaskTaskRunner on a 2-worker LocalCluster (threads) the findings and cycles are identical."""
    infusions, labs, reviews = tables
    want = run_audit(infusions, labs, reviews, GUIDELINE)
    got = run_audit_partitioned(infusions, labs, reviews, GUIDELINE, partitions=4, workers=2, processes=False)
    assert want.findings.height > 0
    assert_same(got, want)
