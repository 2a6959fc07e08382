"""Seeded, deterministic synthetic pharmacy exports for ivig-audit.

Everything here is invented: pseudonymous patients (``P012345``), fake
administration ids (``A0000001``), made-up sites. No real patient data is used
or needed.

The generator builds a small "world" top-down, one vectorized polars table per
level (patients -> courses -> cycles -> infusion days -> bags/rows), so no
Python code runs per row or per patient; 1M rows take a few seconds. Random
numbers come from :class:`random.Random` seeded with a string (stable across
Python versions and platforms), turned into uniform columns in bulk with
``randbytes``. Each level draws from its own named stream, so the clean data is
the same with or without the deliberate problems (``messy``).

Public API::

    generate(n_patients, seed=42, *, as_of=date(2026, 10, 31), messy=True)
        -> (infusions, labs, reviews)           # all-string polars frames
    write_sample(out_dir, n_patients, seed, fmt="csv") -> {"infusions": Path, ...}
    expected_outcome(n_patients, seed, ...)     # what a correct audit should find

CLI: ``python -m sample_data.generate --help``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import math
import random
import re
import sys
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

__all__ = [
    "AS_OF_DEFAULT",
    "INFUSION_COLUMNS",
    "LAB_COLUMNS",
    "REVIEW_COLUMNS",
    "SITE_B_COLUMNS",
    "expected_outcome",
    "generate",
    "main",
    "patients_for_rows",
    "write_sample",
    "write_site_b",
]

AS_OF_DEFAULT = dt.date(2026, 10, 31)

#: The contract's canonical column names (shared/spec/CONTRACT.md), in export order.
INFUSION_COLUMNS: tuple[str, ...] = (
    "admin_id",
    "patient_id",
    "administered_at",
    "product",
    "dose",
    "dose_unit",
    "weight",
    "weight_unit",
    "height",
    "height_unit",
    "sex",
    "birth_date",
    "indication",
    "site",
    "infusion_rate",
    "infusion_rate_unit",
)
LAB_COLUMNS: tuple[str, ...] = ("patient_id", "collected_at", "test", "value", "unit")
REVIEW_COLUMNS: tuple[str, ...] = ("patient_id", "reviewed_on", "note")

#: Site B's export layout: its own column names -> canonical names (None = not mapped).
SITE_B_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("MRN", "patient_id"),
    ("Admin ID", "admin_id"),
    ("Admin Date/Time", "administered_at"),
    ("Drug", "product"),
    ("Amount", "dose"),
    ("Amount Unit", "dose_unit"),
    ("Rate", "infusion_rate"),
    ("Rate Unit", "infusion_rate_unit"),
    ("Wt", "weight"),
    ("Wt Unit", "weight_unit"),
    ("Ht", "height"),
    ("Ht Unit", "height_unit"),
    ("Gender", "sex"),
    ("DOB", "birth_date"),
    ("Dx", "indication"),
    ("Facility", "site"),
    ("Lot #", None),  # an extra column the mapping leaves out
)

# ----------------------------------------------------------------- the world
#: Patient scenarios: each non-compliant one is built to trigger one rule of
#: GUIDELINE.md (profile mayo-2013). Weights are relative. On top of them, any
#: patient may have a missed appointment (3 % of cycles start 36-50 days after
#: the last: CYCLE_INTERVAL_LONG) or a missed last day (2 % of cycles, which
#: can leave a 1 g/kg regimen below the minimum: DOSE_BELOW_MIN).
SCENARIOS: tuple[tuple[str, float], ...] = (
    ("compliant", 0.53),
    ("out_of_scope", 0.05),  # CIDP / ITP / myasthenia gravis: not audited
    ("large_2day", 0.10),  # 2 g/kg over 2 days with > 80 g -> LARGE_DOSE_NOT_SPREAD
    # dosed on the actual weight of an obese adult -> DOSE_ABOVE_MAX (a third of them over 2 days:
    # also DAILY_DOSE_ABOVE_MAX and LARGE_DOSE_NOT_SPREAD)
    ("obese_actual", 0.035),
    ("underdose", 0.02),  # 0.4 g/kg/day x 2 days -> DOSE_BELOW_MIN
    ("daily_high", 0.025),  # one cycle 1.3 + 0.35 + 0.35 g/kg -> DAILY_DOSE_ABOVE_MAX
    ("non_consecutive", 0.03),  # one cycle split over a weekend -> DAYS_NOT_CONSECUTIVE
    ("too_many_days", 0.015),  # one cycle over 6-7 days -> TOO_MANY_INFUSION_DAYS
    ("weight_unknown", 0.03),  # adult, sex or height missing -> DOSING_WEIGHT_UNKNOWN
    ("no_iga", 0.04),  # no IgA before the course -> IGA_NOT_SCREENED
    ("iga_def_privigen", 0.015),  # IgA-deficient on Privigen -> IGA_DEFICIENT_STANDARD_PRODUCT
    ("iga_def_ok", 0.015),  # IgA-deficient on Gammagard S/D (compliant)
    ("interval_short", 0.025),  # one cycle 12-19 days after the last -> CYCLE_INTERVAL_SHORT
    ("interval_long", 0.035),  # one cycle 40-75 days after the last -> CYCLE_INTERVAL_LONG
    ("long_no_review", 0.02),  # 7-8 cycles, no review in window -> COURSE_BEYOND_6_CYCLES_NO_REVIEW
    ("long_reviewed", 0.025),  # 7-8 cycles with a review in window (compliant)
    ("sex_missing_short", 0.01),  # sex blank but < 152.4 cm: actual weight, known (compliant)
)

PRODUCT_MIX: tuple[tuple[str, float], ...] = (
    ("Privigen", 0.72),
    ("Gammagard S/D", 0.06),
    ("Octagam 10%", 0.11),
    ("Gamunex-C", 0.11),
)
#: How each product is spelled in the export (all match the catalog case-insensitively).
PRODUCT_SPELLINGS: dict[str, tuple[tuple[str, float], ...]] = {
    "Privigen": (
        ("Privigen", 0.55),
        ("PRIVIGEN", 0.15),
        ("privigen", 0.08),
        ("Privigen 10%", 0.12),
        ("IVIG Privigen", 0.05),
        ("Immune Globulin Intravenous (Human) 10% Privigen", 0.05),
    ),
    "Gammagard S/D": (
        ("Gammagard S/D", 0.6),
        ("GAMMAGARD S/D", 0.15),
        ("Gammagard SD", 0.1),
        ("Gammagard S/D IgA less than 1", 0.1),
        ("Gammagard S/D 5%", 0.05),
    ),
    "Octagam 10%": (("Octagam 10%", 0.6), ("OCTAGAM", 0.2), ("octagam 10 %", 0.2)),
    "Gamunex-C": (("Gamunex-C", 0.6), ("GAMUNEX-C", 0.15), ("Gamunex", 0.15), ("Gamunex C", 0.1)),
}
ML_PER_G: dict[str, int] = {"Privigen": 10, "Gammagard S/D": 20, "Octagam 10%": 10, "Gamunex-C": 10}
MAX_RATE_MG_KG_MIN: dict[str, float] = {
    "Privigen": 8.0,
    "Gammagard S/D": 4.0,
    "Octagam 10%": 4.0,
    "Gamunex-C": 8.0,
}

ADULT_INDICATIONS: tuple[tuple[str, float], ...] = (
    ("M33.10", 0.22),
    ("M33.1", 0.1),
    ("M33.90", 0.14),
    ("M331", 0.08),
    ("M33.12", 0.06),
    ("M33.13", 0.05),
    ("M33.19", 0.05),
    ("M33.9", 0.05),
    ("M3390", 0.03),
    ("Dermatomyositis", 0.14),
    ("DERMATOMYOSITIS, UNSPECIFIED", 0.04),
    ("Dermatomyositis with myopathy", 0.04),
)
JUVENILE_INDICATIONS: tuple[tuple[str, float], ...] = (
    ("M33.00", 0.3),
    ("M33.02", 0.2),
    ("M33.09", 0.1),
    ("M3300", 0.05),
    ("juvenile dermatomyositis", 0.2),
    ("Juvenile Dermatomyositis", 0.15),
)
OUT_OF_SCOPE_INDICATIONS: tuple[tuple[str, float], ...] = (
    ("G61.81", 0.35),
    ("CIDP", 0.1),
    ("D69.3", 0.25),
    ("myasthenia gravis", 0.15),
    ("G70.00", 0.15),
)
ADULT_SITES: tuple[tuple[str, float], ...] = (
    ("Riverside Infusion Center", 0.45),
    ("Hillcrest Day Unit", 0.25),
    ("North Campus Infusion", 0.2),
    ("Oakview Outpatient Clinic", 0.1),
)
PEDIATRIC_SITE = "Children's Infusion Unit"
SITE_B_NAME = "Lakeside Medical Center"

NORMAL_IGA_UNITS: tuple[tuple[str, float], ...] = (("mg/dL", 0.7), ("g/L", 0.2), ("mg/L", 0.1))
#: IgA-deficient results as (value, unit): all below 7 mg/dL, or censored "<X".
DEFICIENT_IGA: tuple[tuple[str, str], ...] = (
    ("<5", "mg/dL"),
    ("3", "mg/dL"),
    ("0.03", "g/L"),
    ("<0.05", "g/L"),
    ("40", "mg/L"),
    ("<7", "mg/dL"),
)
#: Exactly 7 mg/dL: *not* deficient (deficiency is strictly below 7).
BOUNDARY_IGA: tuple[tuple[str, str], ...] = (("7", "mg/dL"), ("0.07", "g/L"), ("70", "mg/L"))
IGA_TEST_SPELLINGS: tuple[tuple[str, float], ...] = (
    ("IgA", 0.6),
    ("iga", 0.08),
    ("IGA", 0.07),
    ("2458-8", 0.25),
)
OTHER_TESTS: tuple[tuple[str, float], ...] = (("IgG", 0.6), ("2465-3", 0.4))
REVIEW_NOTES: tuple[tuple[str | None, float], ...] = (
    ("Reassessed: strength improved, CK normal; continue monthly IVIG", 0.15),
    ("MMT-8 improved from 118 to 136, rash resolving. Continue.", 0.12),
    ("Rheumatology review: partial response, plan taper after cycle 6", 0.12),
    ("Neuromuscular clinic: stable, continue current dose", 0.12),
    ("Reviewed by pharmacist and prescriber; dose on IBW confirmed", 0.1),
    ('Dysphagia improved; continue IVIG 2 g/kg ("maintenance")', 0.1),
    ("Plan to extend interval to 6 weeks if stable", 0.09),
    ("Skin disease active, muscle strength normal; continue and add MTX", 0.1),
    (None, 0.1),
)

# Deliberate problems (messy=True). Rates are per patient; each kind occurs at
# least once. Extra rows are copies of real rows with one field broken, so the
# valid data is unchanged and a correct audit rejects exactly these rows.
MESSY_RATE = 0.005
LAB_MESSY_RATE = 0.003
BAD_DATE_TEXTS: tuple[tuple[str, float], ...] = (
    ("2025-02-30 09:00", 1.0),
    ("2025-13-01 10:15", 1.0),
    ("31/12/2025 25:00", 1.0),
    ("yesterday", 1.0),
)
FORMULA_SITE = '=HYPERLINK("http://example.invalid/x","Riverside Infusion Center")'
FORMULA_PRODUCT = '=HYPERLINK("http://example.invalid/p","Privigen")'
CONTROL_CHAR_SITE = "Riverside\x07Infusion\x1bCenter"
FORMULA_NOTES = ('=HYPERLINK("http://example.invalid/n","see chart")', "+improved grip strength; continue")

#: (kind, what it is, expected handling) for every deliberate problem.
PROBLEMS: tuple[tuple[str, str, str], ...] = (
    ("unparsable_date", "administered_at is not a date (e.g. 2025-02-30 09:00)", "rejected"),
    ("dose_zero", "dose is 0", "rejected"),
    ("dose_negative", "dose is negative", "rejected"),
    ("unknown_dose_unit", 'dose_unit "units"', "rejected"),
    ("unknown_product", 'product "Hizentra" (a subcutaneous IgG, not in the catalog)', "rejected"),
    ("formula_product", 'product starting with "=" (=HYPERLINK(...)); unknown product', "rejected"),
    ("weight_zero", "weight 0 kg", "rejected"),
    ("weight_500kg", "weight 500 kg", "rejected"),
    ("height_20cm", "height 20 cm", "rejected"),
    ("future_date", "administered_at about 10 years after as_of", "rejected"),
    ("admin_id_conflict", "admin_id repeated with a different dose (on an out-of-scope patient)", "rejected"),
    ("exact_duplicate", "an exact copy of a real row", "counted once (rows_duplicate)"),
    ("formula_site", 'site starting with "=" on a valid row', "audited; must stay text"),
    ("control_char_site", "site with BEL and ESC characters on a valid row", "audited; must be escaped"),
)
REJECTED_KINDS: tuple[str, ...] = tuple(k for k, _, h in PROBLEMS if h == "rejected")
EXTRA_ROW_KINDS: tuple[str, ...] = (*REJECTED_KINDS, "exact_duplicate")
LAB_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("lab_unparsable_date", 'collected_at "2025-02-30" (copy of a real IgA row)'),
    ("lab_bad_value", 'value "hemolysed" (copy of a real IgA row)'),
    ("lab_unknown_unit", 'unit "mmol/L" (copy of a real IgA row)'),
)
REVIEW_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("review_unparsable_date", 'reviewed_on "2025-02-30" (copy of a real review)'),
    ("review_formula_note", 'note starting with "=" or "+" on a valid review'),
)

# The guideline numbers the expected outcome uses (GUIDELINE.md, profile mayo-2013).
_TOL = 0.05
_RULE_SEVERITY: dict[str, str] = {
    "DOSE_ABOVE_MAX": "high",
    "DOSE_BELOW_MIN": "low",
    "DAILY_DOSE_ABOVE_MAX": "medium",
    "LARGE_DOSE_NOT_SPREAD": "low",
    "DAYS_NOT_CONSECUTIVE": "low",
    "TOO_MANY_INFUSION_DAYS": "low",
    "DOSING_WEIGHT_UNKNOWN": "medium",
    "IGA_NOT_SCREENED": "high",
    "IGA_DEFICIENT_STANDARD_PRODUCT": "high",
    "CYCLE_INTERVAL_SHORT": "medium",
    "CYCLE_INTERVAL_LONG": "low",
    "COURSE_BEYOND_6_CYCLES_NO_REVIEW": "medium",
}

LB_KG = 0.45359237
CM_PER_IN = 2.54


# ------------------------------------------------------------ random helpers
class _Stream:
    """A named, seeded source of uniform columns in (0, 1)."""

    def __init__(self, seed: int, name: str) -> None:
        self._rng = random.Random(f"ivig-audit-sample:{seed}:{name}")

    def uniform(self, n: int) -> pl.Series:
        if n == 0:
            return pl.Series(values=[], dtype=pl.Float64)
        return ((self.uniform_bits(n) // 2048).cast(pl.Float64) + 0.5) * 2.0**-53

    def add(self, df: pl.DataFrame, *names: str) -> pl.DataFrame:
        """Add one uniform column ``u_<name>`` per name."""
        return df.with_columns(self.uniform(df.height).alias(f"u_{name}") for name in names)

    def add_coarse(self, df: pl.DataFrame, *names: str) -> pl.DataFrame:
        """Like ``add`` with 16-bit uniforms (four per 64 random bits): for categorical draws on big tables."""
        cols = []
        for start in range(0, len(names), 4):
            bits = self.uniform_bits(df.height)
            for j, name in enumerate(names[start : start + 4]):
                part = (bits // (65536**j)) % 65536
                cols.append(((part.cast(pl.Float64) + 0.5) / 65536.0).alias(f"u_{name}"))
        return df.with_columns(cols)

    def uniform_bits(self, n: int) -> pl.Series:
        """n random 64-bit integers (bytes read as little-endian, like every platform we run on)."""
        raw = self._rng.randbytes(8 * n)
        bits = pl.from_arrow(pa.Array.from_buffers(pa.uint64(), n, [None, pa.py_buffer(raw)]))
        assert isinstance(bits, pl.Series)
        return bits


def _names(text: str) -> list[str]:
    """Names of uniform columns, written as one space-separated string."""
    return text.split()


def _u(name: str) -> pl.Expr:
    return pl.col(f"u_{name}")


def _index(u: pl.Expr, weights: Sequence[float]) -> pl.Expr:
    """Categorical draw: index i with probability weights[i] / sum(weights)."""
    total = float(sum(weights))
    cum, acc = [], 0.0
    for w in weights[:-1]:
        acc += w
        cum.append(acc / total)
    if not cum:
        return pl.lit(0, dtype=pl.Int32)
    return pl.sum_horizontal([(u >= c).cast(pl.Int32) for c in cum])


def _choose(u: pl.Expr, options: Sequence[tuple[Any, float]], dtype: pl.DataType | None = None) -> pl.Expr:
    """Categorical draw of one of the options' values."""
    idx = _index(u, [w for _, w in options])
    values = {i: v for i, (v, _) in enumerate(options)}
    return idx.replace_strict(values, return_dtype=dtype or pl.String())


def _normal(u1: pl.Expr, u2: pl.Expr) -> pl.Expr:
    """Standard normal from two uniforms (Box-Muller)."""
    return (-2.0 * u1.log()).sqrt() * (2.0 * math.pi * u2).cos()


def _randint(u: pl.Expr, lo: int | pl.Expr, hi: int | pl.Expr) -> pl.Expr:
    """Uniform integer in [lo, hi]."""
    lo_e = lo if isinstance(lo, pl.Expr) else pl.lit(lo)
    hi_e = hi if isinstance(hi, pl.Expr) else pl.lit(hi)
    return (lo_e + (u * (hi_e - lo_e + 1)).floor()).cast(pl.Int64)


def _round_to(x: pl.Expr, step: float) -> pl.Expr:
    return (x / step).round(0) * step


def _vial_round(target_g: pl.Expr) -> pl.Expr:
    """Grams as a pharmacy would dispense: nearest 5 g if within 4 %, else whole grams."""
    r5 = _round_to(target_g, 5.0)
    r1 = pl.max_horizontal(target_g.round(0), pl.lit(1.0))
    ok = (r5 > 0) & ((r5 - target_g).abs() <= 0.04 * target_g)
    return pl.when(ok).then(r5).otherwise(r1).cast(pl.Int64)


def _num_str(x: pl.Expr) -> pl.Expr:
    """A float as short text: 72.0 -> "72", 72.5 -> "72.5"."""
    return x.cast(pl.String).str.strip_suffix(".0")


def _log(verbose: bool, t0: float, msg: str) -> None:
    if verbose:
        peak_mb = _peak_rss_mb()
        peak = f", peak RSS {peak_mb:,.0f} MB" if peak_mb else ""
        print(f"[{time.perf_counter() - t0:7.2f}s] {msg}{peak}", file=sys.stderr, flush=True)


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # the resource module doesn't exist on Windows
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 1024 / 1024


# ----------------------------------------------------------------- the build
@dataclass
class _World:
    """Everything one generation produced, including what a correct audit should see."""

    infusions: pl.DataFrame
    labs: pl.DataFrame
    reviews: pl.DataFrame
    cycles: pl.DataFrame  # one row per cycle (clean data)
    days: pl.DataFrame  # one row per infusion day (clean data)
    iga_events: pl.DataFrame  # pidx, collected_dt, is_deficient (valid IgA results)
    review_dates: pl.DataFrame  # pidx, reviewed_on (valid reviews)
    patients: pl.DataFrame
    problems: dict[str, int] = field(default_factory=dict)
    pid_of: pl.DataFrame = field(default_factory=pl.DataFrame)  # pidx -> patient_id


def _patient_id_expr(n: int, seed: int) -> pl.Expr:
    digits = 6
    while 10**digits < n:
        digits += 1
    modulus = 10**digits
    offset = random.Random(f"ivig-audit-sample:{seed}:ids").randrange(modulus)
    num = (pl.col("pidx") * 7919 + offset) % modulus  # 7919 is prime and coprime with 10: a bijection
    return pl.concat_str([pl.lit("P"), num.cast(pl.String).str.zfill(digits)])


def _build_patients(n: int, seed: int) -> pl.DataFrame:
    s = _Stream(seed, "patients")
    p = pl.select(pidx=pl.int_range(0, n, dtype=pl.Int64))
    p = s.add(
        p,
        *_names("scn ped sex age1 age2 h1 h2 hsh bmi1 bmi2 units sexfmt bd product site course2"),
        *_names("ncyc ncyc2 k regimen bigdays oneday wuvar lab iga repeat igg lab2 review"),
        *_names("revvar anchor obvar"),
    )
    scn = pl.col("scenario")
    p = p.with_columns(scenario=_choose(_u("scn"), SCENARIOS))
    p = p.with_columns(
        is_ped=(scn == "compliant") & (_u("ped") < 0.08),
        sex_true=_choose(_u("sex"), (("F", 2.0), ("M", 1.0))),
        wu_variant=pl.when(scn == "weight_unknown")
        .then(pl.when(_u("wuvar") < 0.6).then(pl.lit("sex_missing")).otherwise(pl.lit("height_missing")))
        .otherwise(None),
    )
    z_age = _normal(_u("age1"), _u("age2"))
    z_h = _normal(_u("h1"), _u("h2"))
    z_bmi = _normal(_u("bmi1"), _u("bmi2"))
    p = p.with_columns(
        age_years=pl.when(pl.col("is_ped"))
        .then(4.0 + _u("age1") * 11.5)
        .otherwise((50.0 + 14.0 * z_age).clip(19.5, 86.0)),
    )
    height = (
        pl.when(pl.col("is_ped"))
        .then((98.0 + 5.6 * pl.col("age_years") + 6.0 * z_h).clip(95.0, 175.0))
        .when(pl.col("sex_true") == "F")
        .then((162.5 + 6.5 * z_h).clip(145.0, 195.0))
        .otherwise((176.5 + 7.0 * z_h).clip(145.0, 195.0))
    )
    height = (
        pl.when(scn == "sex_missing_short")
        .then(145.0 + 6.0 * _u("hsh"))
        .when(scn.is_in(["obese_actual", "weight_unknown"]))
        .then(pl.max_horizontal(height, pl.lit(156.0) + 4.0 * _u("hsh")))
        .otherwise(height)
    )
    p = p.with_columns(height_true=height)
    # Keep clear of the 152.4 cm (60 in) boundary so recorded values are unambiguous.
    h = pl.col("height_true")
    p = p.with_columns(
        height_true=pl.when((h > 151.0) & (h < 153.8))
        .then(pl.when(h < 152.4).then(pl.lit(151.0)).otherwise(pl.lit(153.8)))
        .otherwise(h)
    )
    bmi = (
        pl.when(pl.col("is_ped"))
        .then((17.5 + 2.8 * z_bmi).clip(13.0, 27.0))
        .when(scn == "obese_actual")
        .then(35.0 + 11.0 * _u("bmi1"))
        .otherwise((27.5 + 5.5 * z_bmi).clip(17.5, 46.0))
    )
    p = p.with_columns(weight_true=bmi * (pl.col("height_true") / 100.0) ** 2)
    p = p.with_columns(is_imperial=_u("units") < 0.12)
    # Recorded height: cm with one decimal, or inches to the half inch.
    h_in = _round_to(pl.col("height_true") / CM_PER_IN, 0.5)
    p = p.with_columns(
        height_rec=pl.when(pl.col("wu_variant") == "height_missing")
        .then(None)
        .when(pl.col("is_imperial"))
        .then(h_in)
        .otherwise(pl.col("height_true").round(1)),
    )
    p = p.with_columns(
        height_cm=pl.when(pl.col("is_imperial")).then(pl.col("height_rec") * CM_PER_IN).otherwise(pl.col("height_rec")),
        is_sex_missing=(pl.col("wu_variant") == "sex_missing").fill_null(False) | (scn == "sex_missing_short"),
    )
    f_spell = (("F", 0.7), ("female", 0.1), ("Female", 0.12), ("FEMALE", 0.08))
    m_spell = (("M", 0.7), ("male", 0.1), ("Male", 0.12), ("MALE", 0.08))
    p = p.with_columns(
        sex_rec=pl.when(pl.col("is_sex_missing"))
        .then(pl.when(_u("sexfmt") < 0.5).then(None).otherwise(pl.lit("U")))
        .when(pl.col("sex_true") == "F")
        .then(_choose(_u("sexfmt"), f_spell))
        .otherwise(_choose(_u("sexfmt"), m_spell)),
        sex_known=pl.when(pl.col("is_sex_missing")).then(None).otherwise(pl.col("sex_true")),
        has_birth_date=pl.col("is_ped") | (_u("bd") >= 0.05),
        product_canon=pl.when(scn == "iga_def_privigen")
        .then(pl.lit("Privigen"))
        .when(scn == "iga_def_ok")
        .then(pl.lit("Gammagard S/D"))
        .otherwise(_choose(_u("product"), PRODUCT_MIX)),
        site=pl.when(pl.col("is_ped")).then(pl.lit(PEDIATRIC_SITE)).otherwise(_choose(_u("site"), ADULT_SITES)),
        n_courses=pl.when(_u("course2") < 0.10).then(2).otherwise(1).cast(pl.Int64),
    )
    n_c0 = (
        pl.when(scn.is_in(["long_no_review", "long_reviewed"]))
        .then(7 + (_u("ncyc") >= 0.5).cast(pl.Int64))
        .when(scn.is_in(["interval_short", "interval_long"]))
        .then(_randint(_u("ncyc"), 3, 6))
        .otherwise(
            _choose(
                _u("ncyc"),
                ((1, 0.07), (2, 0.12), (3, 0.2), (4, 0.17), (5, 0.14), (6, 0.3)),
                pl.Int64(),
            )
        )
    )
    p = p.with_columns(n_cycles_c0=n_c0, n_cycles_c1=_randint(_u("ncyc2"), 1, 4))
    n0 = pl.col("n_cycles_c0")
    p = p.with_columns(
        # The cycle (0-based, first course) a one-off scenario acts on.
        special_cycle=pl.when(scn.is_in(["interval_short", "interval_long"]))
        .then(_randint(_u("k"), 1, n0 - 1))
        .otherwise(_randint(_u("k"), 0, n0 - 1)),
        regimen=pl.when(_u("regimen") < 0.6).then(pl.lit("2gk")).otherwise(pl.lit("1gk")),
        big_days=_choose(_u("bigdays"), ((3, 0.15), (4, 0.35), (5, 0.5)), pl.Int64()),
        is_one_day=_u("oneday") < 0.25,
        lab_variant=pl.when(scn == "no_iga")
        .then(_choose(_u("lab"), (("none", 0.4), ("after", 0.35), ("igg_only", 0.25))))
        .otherwise(_choose(_u("lab"), (("before", 0.88), ("same_day_time", 0.07), ("same_day_date", 0.05)))),
        iga_kind=pl.when(scn.is_in(["iga_def_privigen", "iga_def_ok"]))
        .then(pl.lit("deficient"))
        .when((scn == "compliant") & (_u("iga") < 0.03))
        .then(pl.lit("boundary"))
        .otherwise(pl.lit("normal")),
        has_repeat_lab=_u("repeat") < 0.15,
        has_igg=_u("igg") < 0.15,
        has_course2_lab=_u("lab2") < 0.5,
        review_variant=pl.when(scn == "long_reviewed")
        .then(_choose(_u("revvar"), (("inside", 0.7), ("on_c3", 0.15), ("on_c7", 0.15))))
        .when(scn == "long_no_review")
        .then(_choose(_u("revvar"), (("none", 0.5), ("early", 0.25), ("late", 0.25))))
        .when((scn != "out_of_scope") & (n0 >= 3) & (_u("review") < 0.15))
        .then(pl.lit("random"))
        .otherwise(pl.lit("none")),
        is_in_scope=scn != "out_of_scope",
        indication_group=pl.when(scn == "out_of_scope")
        .then(pl.lit("oos"))
        .when(pl.col("is_ped"))
        .then(pl.lit("juvenile"))
        .otherwise(pl.lit("adult")),
        patient_id=_patient_id_expr(n, seed),
        is_obese_2day=(scn == "obese_actual") & (_u("obvar") < 0.35),
        slack_days=(_u("anchor") * 540.0).floor().cast(pl.Int64),
        height_str=_num_str(pl.col("height_rec")),
        height_unit=pl.when(pl.col("height_rec").is_null())
        .then(None)
        .when(pl.col("is_imperial"))
        .then(pl.lit("in"))
        .otherwise(pl.lit("cm")),
    )
    return p.drop([col for col in p.columns if col.startswith("u_")])


def _dosing_weight(w: pl.Expr, h_cm: pl.Expr, sex: pl.Expr, under18: pl.Expr) -> pl.Expr:
    """GUIDELINE.md dosing weight: actual when < 18, < 152.4 cm or lighter than IBW; else IBW."""
    ibw = pl.when(sex == "F").then(45.5).when(sex == "M").then(50.0).otherwise(None) + 2.3 * (h_cm / CM_PER_IN - 60.0)
    use_actual = under18 | (h_cm < 152.4).fill_null(False) | (w < ibw).fill_null(False)
    return pl.when(use_actual).then(w).otherwise(ibw)


def _explode_counts(counts: pl.Series) -> pl.DataFrame:
    """One row per unit of ``counts``: ``parent`` (index into counts) and ``pos`` (0-based within it)."""
    df = pl.DataFrame({"parent": pl.int_range(0, counts.len(), dtype=pl.Int64, eager=True), "n": counts})
    return df.select("parent", pos=pl.int_ranges(0, pl.col("n"), dtype=pl.Int64)).explode("pos")


def _take(frame: pl.DataFrame, cols: Sequence[str], idx: pl.Series) -> list[pl.Series]:
    """Columns of ``frame`` gathered at ``idx`` (a join by row number, without hashing)."""
    return [frame[c].gather(idx) for c in cols]


def _first_of_run(key: pl.Expr) -> pl.Expr:
    return key.shift(1).is_null() | (key != key.shift(1))


def _last_of_run(key: pl.Expr) -> pl.Expr:
    return key.shift(-1).is_null() | (key != key.shift(-1))


def _build_cycles(p: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Patients -> courses -> cycles (one row per cycle, in patient/course/cycle order)."""
    courses = _explode_counts(p["n_courses"]).select(pidx="parent", course_no="pos")
    n0, n1 = _take(p, ["n_cycles_c0", "n_cycles_c1"], courses["pidx"])
    n_cycles = pl.select(pl.when(courses["course_no"] == 0).then(pl.lit(n0)).otherwise(pl.lit(n1))).to_series()
    ex = _explode_counts(n_cycles)
    c = pl.DataFrame([*_take(courses, ["pidx", "course_no"], ex["parent"]), ex["pos"].alias("cycle_no")]).with_columns(
        ckey=pl.int_range(0, pl.len(), dtype=pl.Int64)
    )
    pcols = [
        "scenario",
        "is_ped",
        "weight_true",
        "height_true",
        "sex_true",
        "is_imperial",
        "height_cm",
        "sex_known",
        "special_cycle",
        "regimen",
        "big_days",
        "is_one_day",
        "is_obese_2day",
    ]
    c = c.with_columns(_take(p, pcols, c["pidx"]))
    s = _Stream(seed, "cycles")
    c = s.add(c, "int1", "int2", "odd", "w1", "w2", "gappos", "gaplen", "ndays", "late", "miss")
    scn = pl.col("scenario")
    first_course = pl.col("course_no") == 0
    is_special = first_course & (pl.col("cycle_no") == pl.col("special_cycle"))
    base_interval = (28.0 + (2.0 * _normal(_u("int1"), _u("int2"))).round(0)).clip(24.0, 33.0).cast(pl.Int64)
    is_patient_start = first_course & (pl.col("cycle_no") == 0)
    interval = (
        pl.when(is_patient_start)
        .then(pl.lit(0, dtype=pl.Int64))
        .when(pl.col("cycle_no") == 0)
        .then(_randint(_u("odd"), 100, 280))  # a new course: > 90 days after the last cycle start
        .when(is_special & (scn == "interval_short"))
        .then(_randint(_u("odd"), 12, 19))
        .when(is_special & (scn == "interval_long"))
        .then(_randint(_u("odd"), 40, 75))
        .when(_u("late") < 0.03)
        .then(_randint(_u("odd"), 36, 50))  # a missed appointment, anyone
        .otherwise(base_interval)
    )
    c = c.with_columns(interval_days=interval, is_special=is_special)
    # Cycle start, in days after the patient's first dose: a running sum restarted per patient.
    running = pl.col("interval_days").cum_sum()
    c = c.with_columns(cycle_offset=running - pl.when(is_patient_start).then(running).forward_fill())
    # Actual weight recorded at the cycle (drifts a little), in kg or lb.
    w_true = pl.col("weight_true") * (1.0 + 0.012 * _normal(_u("w1"), _u("w2")))
    c = c.with_columns(
        weight_rec=pl.when(pl.col("is_imperial")).then((w_true / LB_KG).round(1)).otherwise(w_true.round(1))
    )
    c = c.with_columns(
        weight_kg=pl.when(pl.col("is_imperial")).then(pl.col("weight_rec") * LB_KG).otherwise(pl.col("weight_rec"))
    )
    c = c.with_columns(
        dw_audit=_dosing_weight(pl.col("weight_kg"), pl.col("height_cm"), pl.col("sex_known"), pl.col("is_ped")),
        # What the prescriber used: the same rule on the true sex and height ...
        dw_used=pl.when(scn == "obese_actual")
        .then(pl.col("weight_kg"))  # ... except the obese patients dosed on actual weight
        .otherwise(
            _dosing_weight(pl.col("weight_kg"), pl.col("height_true").round(1), pl.col("sex_true"), pl.col("is_ped"))
        ),
        total_g_per_kg=pl.when(scn == "underdose")
        .then(0.8)
        .when(scn.is_in(["large_2day", "obese_actual", "too_many_days", "daily_high"]))
        .then(2.0)
        .when(pl.col("regimen") == "1gk")
        .then(1.0)
        .otherwise(2.0),
    )
    target = pl.col("total_g_per_kg") * pl.col("dw_used")
    default_days = (
        pl.when(pl.col("total_g_per_kg") >= 2.0)
        .then(pl.when(target <= 76.0).then(2).otherwise(pl.col("big_days")))
        .otherwise(pl.when(target > 76.0).then(3).when(pl.col("is_one_day")).then(1).otherwise(2))
    )
    n_days = (
        pl.when(scn == "large_2day")
        .then(2)
        .when(scn == "obese_actual")
        .then(pl.when(pl.col("is_obese_2day")).then(2).otherwise(5))
        .when(scn == "underdose")
        .then(2)
        .when(is_special & (scn == "too_many_days"))
        .then(_randint(_u("ndays"), 6, 7))
        .when(is_special & (scn == "daily_high"))
        .then(3)
        .when(is_special & (scn == "non_consecutive"))
        .then(pl.max_horizontal(default_days, pl.lit(2)))
        .otherwise(default_days)
        .cast(pl.Int64)
    )
    # Now and then the last planned day isn't given (patient unwell, no chair): a shorter cycle.
    missed = ~is_special & (n_days >= 2) & (_u("miss") < 0.02)
    c = c.with_columns(n_planned=n_days, n_days=n_days - missed.cast(pl.Int64), target_total_g=target)
    c = c.with_columns(
        gap_day=pl.when(is_special & (scn == "non_consecutive"))
        .then(_randint(_u("gappos"), 1, pl.col("n_days") - 1))
        .otherwise(None),
        gap_len=_randint(_u("gaplen"), 2, 3),
        is_daily_high_cycle=is_special & (scn == "daily_high"),
    )
    return c.select(
        "pidx",
        "course_no",
        "cycle_no",
        "ckey",
        "interval_days",
        "cycle_offset",
        "weight_rec",
        "weight_kg",
        "dw_audit",
        "n_days",
        "n_planned",
        "target_total_g",
        "gap_day",
        "gap_len",
        "is_daily_high_cycle",
    )


def _build_days(c: pl.DataFrame, p: pl.DataFrame, seed: int, as_of: dt.date) -> pl.DataFrame:
    """Cycles -> infusion days, with doses in grams and calendar dates."""
    ex = _explode_counts(c["n_days"])
    d = pl.DataFrame([ex["parent"].alias("ckey"), ex["pos"].alias("day_no")])
    cols = ["pidx", "cycle_offset", "n_planned", "target_total_g", "gap_day", "gap_len", "is_daily_high_cycle"]
    d = d.with_columns(_take(c, cols, d["ckey"]))
    after_gap = (pl.col("day_no") >= pl.col("gap_day")).fill_null(False)
    frac = (
        pl.when(pl.col("is_daily_high_cycle"))
        .then(pl.when(pl.col("day_no") == 0).then(1.3 / 2.0).otherwise(0.35 / 2.0))
        .otherwise(1.0 / pl.col("n_planned"))
    )
    d = d.with_columns(
        day_in_cycle=pl.col("day_no") + pl.when(after_gap).then(pl.col("gap_len") - 1).otherwise(0),
        # days since the previous infusion day of the cycle (0 for the first)
        day_gap=pl.when(pl.col("day_no") == 0)
        .then(0)
        .when(pl.col("day_no") == pl.col("gap_day"))
        .then(pl.col("gap_len"))
        .otherwise(1)
        .cast(pl.Int64),
        daily_g=_vial_round(pl.col("target_total_g") * frac),
    )
    d = d.with_columns(day_offset=pl.col("cycle_offset") + pl.col("day_in_cycle"))
    # Anchor each patient so the last dose is before as_of, with 0-539 days of slack.
    span = pl.when(_last_of_run(pl.col("pidx"))).then(pl.col("day_offset")).backward_fill()
    slack = p["slack_days"].gather(d["pidx"])
    d = d.with_columns(first_date=pl.lit(as_of) - pl.duration(days=span + 1 + slack))
    d = d.with_columns(day_date=pl.col("first_date") + pl.duration(days=pl.col("day_offset")))
    sdy = _Stream(seed, "days")
    d = sdy.add_coarse(d, "start", "bag", "split", "bag2at")
    d = d.with_columns(
        start_min=(8 * 60 + 15 * _randint(_u("start"), 0, 20)),
        n_bags=pl.when((pl.col("daily_g") >= 20) & (_u("bag") < 0.15)).then(2).otherwise(1).cast(pl.Int64),
        bag1_g=pl.min_horizontal(
            pl.max_horizontal(_round_to(pl.col("daily_g") * (0.4 + 0.2 * _u("split")), 5.0), pl.lit(5.0)),
            pl.col("daily_g") - 5,
        ).cast(pl.Int64),
        bag2_min=150 + 5 * _randint(_u("bag2at"), 0, 24),
    )
    return d.select(
        "pidx",
        "ckey",
        "day_no",
        "day_gap",
        "daily_g",
        "first_date",
        "day_date",
        "start_min",
        "n_bags",
        "bag1_g",
        "bag2_min",
    )


def _build_rows(d: pl.DataFrame, c: pl.DataFrame, p: pl.DataFrame, seed: int) -> pl.DataFrame:
    """Infusion days -> export rows (one per bag), formatted as text, in time order."""
    ex = _explode_counts(d["n_bags"])
    day = ex["parent"]
    r = pl.DataFrame([*_take(d, ["pidx", "ckey", "daily_g", "bag1_g", "n_bags"], day), ex["pos"].alias("bag_no")])
    day_date, start_min, bag2_min = _take(d, ["day_date", "start_min", "bag2_min"], day)
    r = r.with_columns(
        dose_g=pl.when(pl.col("n_bags") == 1)
        .then(pl.col("daily_g"))
        .when(pl.col("bag_no") == 0)
        .then(pl.col("bag1_g"))
        .otherwise(pl.col("daily_g") - pl.col("bag1_g")),
        minute=pl.lit(day_date).cast(pl.Int64) * 1440 + pl.lit(start_min) + pl.col("bag_no") * pl.lit(bag2_min),
    )
    # Time order, ties by patient then bag, through one integer key (much faster than a multi-column sort).
    pidx_bits = max(1, int(p.height).bit_length())
    r = r.with_columns(_sort=(pl.col("minute") * (1 << pidx_bits) + pl.col("pidx")) * 2 + pl.col("bag_no"))
    r = r.sort("_sort").select(
        "pidx",
        "ckey",
        "dose_g",
        at=(pl.col("minute") * 60_000_000).cast(pl.Datetime("us")),
    )
    r = r.with_columns(_take(c, ["weight_rec", "weight_kg"], r["ckey"])).drop("ckey")
    pcols = [
        "patient_id",
        "product_canon",
        "is_imperial",
        "height_str",
        "height_unit",
        "sex_rec",
        "birth_date_str",
        "site",
        "indication_group",
        "is_in_scope",
    ]
    r = r.with_columns(_take(p, pcols, r["pidx"]))
    s = _Stream(seed, "rows")
    r = s.add_coarse(r, "fmt", "spell", "unit", "ind", "rate", "rateunit", "ratev")
    prod = pl.col("product_canon")
    spelled: pl.Expr = pl.lit(None, dtype=pl.String)
    for canon, options in reversed(list(PRODUCT_SPELLINGS.items())):
        spelled = pl.when(prod == canon).then(_choose(_u("spell"), options)).otherwise(spelled)
    unit = _choose(_u("unit"), (("g", 0.8), ("mg", 0.08), ("mL", 0.12)))
    ml_per_g = prod.replace_strict(ML_PER_G, return_dtype=pl.Int64)
    rate_mg = _round_to(1.0 + _u("ratev") * (prod.replace_strict(MAX_RATE_MG_KG_MIN) - 1.0), 0.5)
    rate_ml_h = _round_to(rate_mg * pl.col("weight_kg") * 60.0 * ml_per_g / 1000.0, 5.0)
    has_rate = _u("rate") < 0.65
    is_ml_h = _u("rateunit") < 0.7
    ind = pl.col("indication_group")
    r = r.with_columns(dose_unit=unit, at_text=pl.col("at").dt.strftime("%Y-%m-%d %H:%M"))
    at_text = pl.col("at_text")
    return r.select(
        admin_id=pl.lit("A") + pl.int_range(1, pl.len() + 1, dtype=pl.Int64).cast(pl.String).str.zfill(7),
        patient_id=pl.col("patient_id"),
        administered_at=pl.when(_u("fmt") < 0.15)
        .then(at_text.str.replace(" ", "T", literal=True) + ":00")
        .otherwise(at_text),
        product=spelled,
        dose=pl.when(pl.col("dose_unit") == "g")
        .then(pl.col("dose_g"))
        .when(pl.col("dose_unit") == "mg")
        .then(pl.col("dose_g") * 1000)
        .otherwise(pl.col("dose_g") * ml_per_g)
        .cast(pl.String),
        dose_unit=pl.col("dose_unit"),
        weight=_num_str(pl.col("weight_rec")),
        weight_unit=pl.when(pl.col("is_imperial")).then(pl.lit("lb")).otherwise(pl.lit("kg")),
        height=pl.col("height_str"),
        height_unit=pl.col("height_unit"),
        sex=pl.col("sex_rec"),
        birth_date=pl.col("birth_date_str"),
        indication=pl.when(ind == "oos")
        .then(_choose(_u("ind"), OUT_OF_SCOPE_INDICATIONS))
        .when(ind == "juvenile")
        .then(_choose(_u("ind"), JUVENILE_INDICATIONS))
        .otherwise(_choose(_u("ind"), ADULT_INDICATIONS)),
        site=pl.col("site"),
        infusion_rate=pl.when(~has_rate)
        .then(None)
        .when(is_ml_h)
        .then(rate_ml_h.cast(pl.Int64).cast(pl.String))
        .otherwise(rate_mg.round(1).cast(pl.String)),
        infusion_rate_unit=pl.when(~has_rate)
        .then(None)
        .when(is_ml_h)
        .then(pl.lit("mL/h"))
        .otherwise(pl.lit("mg/kg/min")),
        # bookkeeping, dropped before returning
        _pidx=pl.col("pidx"),
        _in_scope=pl.col("is_in_scope"),
        _key=pl.int_range(0, pl.len(), dtype=pl.Int64).cast(pl.Float64),
        _at=pl.col("at"),
        _dose_g=pl.col("dose_g"),
    )


def _fmt_dt(at: pl.Expr, date_only: pl.Expr, u: pl.Expr) -> pl.Expr:
    return (
        pl.when(date_only)
        .then(at.dt.strftime("%Y-%m-%d"))
        .when(u < 0.75)
        .then(at.dt.strftime("%Y-%m-%d %H:%M"))
        .otherwise(at.dt.strftime("%Y-%m-%dT%H:%M:%S"))
    )


def _iga_value(kind: pl.Expr, u_unit: pl.Expr, u1: pl.Expr, u2: pl.Expr, u3: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(value, unit) text for an IgA result of the given kind."""
    mg_dl = (5.25 + 0.45 * _normal(u1, u2)).exp().clip(45.0, 650.0).round(0)
    unit = _choose(u_unit, NORMAL_IGA_UNITS)
    normal_value = (
        pl.when(unit == "mg/dL")
        .then(pl.when((mg_dl > 400) & (u3 < 0.5)).then(pl.lit(">400")).otherwise(mg_dl.cast(pl.Int64).cast(pl.String)))
        .when(unit == "g/L")
        .then(_num_str((mg_dl / 100.0).round(2)))
        .otherwise((mg_dl * 10).cast(pl.Int64).cast(pl.String))
    )
    def_idx = _index(u3, [1.0] * len(DEFICIENT_IGA))
    bnd_idx = _index(u3, [1.0] * len(BOUNDARY_IGA))
    value = (
        pl.when(kind == "deficient")
        .then(def_idx.replace_strict({i: v for i, (v, _) in enumerate(DEFICIENT_IGA)}, return_dtype=pl.String))
        .when(kind == "boundary")
        .then(bnd_idx.replace_strict({i: v for i, (v, _) in enumerate(BOUNDARY_IGA)}, return_dtype=pl.String))
        .otherwise(normal_value)
    )
    unit_out = (
        pl.when(kind == "deficient")
        .then(def_idx.replace_strict({i: x for i, (_, x) in enumerate(DEFICIENT_IGA)}, return_dtype=pl.String))
        .when(kind == "boundary")
        .then(bnd_idx.replace_strict({i: x for i, (_, x) in enumerate(BOUNDARY_IGA)}, return_dtype=pl.String))
        .otherwise(unit)
    )
    return value, unit_out


def _build_labs(p: pl.DataFrame, seed: int, as_of: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """IgA (and some other) results; returns (labs text frame with _pidx/_at, IgA events for the expectation)."""
    s = _Stream(seed, "labs")
    lp = s.add(
        p.select(
            "pidx",
            "patient_id",
            "lab_variant",
            "iga_kind",
            "has_repeat_lab",
            "has_igg",
            "has_course2_lab",
            "n_courses",
            "first_at",
            "last_date",
            "c2_first_date",
        ),
        *_names("days time dateonly fmt test unit v1 v2 v3 rdays rtime rdo rfmt rtest runit rv1 rv2 rv3"),
        *_names("c2days c2time c2do c2fmt c2test c2unit c2v1 c2v2 c2v3 gdays gtest gval gtime gdo gfmt"),
    )
    first_day = pl.col("first_at").dt.truncate("1d")
    as_of_dt = pl.lit(dt.datetime.combine(as_of, dt.time()))
    t_morning = pl.duration(minutes=7 * 60 + 15 * _randint(_u("time"), 0, 19))
    var = pl.col("lab_variant")
    at = (
        pl.when(var == "before")
        .then(first_day - pl.duration(days=_randint(_u("days"), 1, 60)) + t_morning)
        .when(var == "same_day_time")
        .then(pl.col("first_at") - pl.duration(minutes=30 + 5 * _randint(_u("days"), 0, 12)))
        .when(var == "same_day_date")
        .then(first_day)
        .when(var == "after")
        .then(pl.min_horizontal(first_day + pl.duration(days=_randint(_u("days"), 2, 20)), as_of_dt))
        .otherwise(None)
    )
    date_only = (var == "same_day_date") | ((var != "same_day_time") & (_u("dateonly") < 0.4)) | (at == as_of_dt)
    value, unit = _iga_value(pl.col("iga_kind"), _u("unit"), _u("v1"), _u("v2"), _u("v3"))
    date_only_at = pl.when(date_only).then(at.dt.truncate("1d")).otherwise(at)
    primary = lp.filter(var.is_in(["before", "same_day_time", "same_day_date", "after"])).select(
        _pidx=pl.col("pidx"),
        patient_id=pl.col("patient_id"),
        collected_at=_fmt_dt(at, date_only, _u("fmt")),
        test=_choose(_u("test"), IGA_TEST_SPELLINGS),
        value=value,
        unit=unit,
        _at=date_only_at,
        _is_iga=pl.lit(True),
        _deficient=pl.col("iga_kind") == "deficient",
    )
    # A repeat IgA during the course (same status), for some patients.
    span_days = (pl.col("last_date") - first_day.cast(pl.Date)).dt.total_days()
    r_at = (
        first_day
        + pl.duration(days=30 + (_u("rdays") * (span_days - 30).clip(1, None)).floor().cast(pl.Int64))
        + pl.duration(minutes=7 * 60 + 15 * _randint(_u("rtime"), 0, 19))
    )
    r_do = _u("rdo") < 0.4
    r_value, r_unit = _iga_value(pl.col("iga_kind"), _u("runit"), _u("rv1"), _u("rv2"), _u("rv3"))
    repeat = lp.filter(
        pl.col("has_repeat_lab") & var.is_in(["before", "same_day_time", "same_day_date"]) & (span_days > 31)
    ).select(
        _pidx=pl.col("pidx"),
        patient_id=pl.col("patient_id"),
        collected_at=_fmt_dt(r_at, r_do, _u("rfmt")),
        test=_choose(_u("rtest"), IGA_TEST_SPELLINGS),
        value=r_value,
        unit=r_unit,
        _at=pl.when(r_do).then(r_at.dt.truncate("1d")).otherwise(r_at),
        _is_iga=pl.lit(True),
        _deficient=pl.col("iga_kind") == "deficient",
    )
    # A new IgA before a second course, for half of them.
    c2_at = (
        pl.col("c2_first_date").cast(pl.Datetime("us"))
        - pl.duration(days=_randint(_u("c2days"), 1, 30))
        + pl.duration(minutes=7 * 60 + 15 * _randint(_u("c2time"), 0, 19))
    )
    c2_do = _u("c2do") < 0.4
    c2_value, c2_unit = _iga_value(pl.col("iga_kind"), _u("c2unit"), _u("c2v1"), _u("c2v2"), _u("c2v3"))
    course2 = lp.filter((pl.col("n_courses") == 2) & pl.col("has_course2_lab") & (var != "none")).select(
        _pidx=pl.col("pidx"),
        patient_id=pl.col("patient_id"),
        collected_at=_fmt_dt(c2_at, c2_do, _u("c2fmt")),
        test=_choose(_u("c2test"), IGA_TEST_SPELLINGS),
        value=c2_value,
        unit=c2_unit,
        _at=pl.when(c2_do).then(c2_at.dt.truncate("1d")).otherwise(c2_at),
        _is_iga=pl.lit(True),
        _deficient=pl.col("iga_kind") == "deficient",
    )
    # Other tests (IgG): ignored by the audit, counted.
    g_at = (
        first_day
        - pl.duration(days=_randint(_u("gdays"), 1, 60))
        + pl.duration(minutes=7 * 60 + 15 * _randint(_u("gtime"), 0, 19))
    )
    g_do = _u("gdo") < 0.4
    other = lp.filter(pl.col("has_igg") | (var == "igg_only")).select(
        _pidx=pl.col("pidx"),
        patient_id=pl.col("patient_id"),
        collected_at=_fmt_dt(g_at, g_do, _u("gfmt")),
        test=_choose(_u("gtest"), OTHER_TESTS),
        value=(600.0 + 900.0 * _u("gval")).round(0).cast(pl.Int64).cast(pl.String),
        unit=pl.lit("mg/dL"),
        _at=pl.when(g_do).then(g_at.dt.truncate("1d")).otherwise(g_at),
        _is_iga=pl.lit(False),
        _deficient=pl.lit(False),
    )
    labs = pl.concat([primary, repeat, course2, other], how="vertical")
    labs = labs.sort(["_at", "_pidx", "test"], maintain_order=True)
    labs = labs.with_columns(_key=pl.int_range(0, pl.len(), dtype=pl.Int64).cast(pl.Float64))
    events = labs.filter(pl.col("_is_iga")).select(
        pidx=pl.col("_pidx"), collected_dt=pl.col("_at"), is_deficient=pl.col("_deficient")
    )
    return labs, events


def _build_reviews(p: pl.DataFrame, c: pl.DataFrame, seed: int, as_of: dt.date) -> pl.DataFrame:
    """Documented reassessments; returns text frame with _pidx/_on."""
    starts = (
        c.filter((pl.col("course_no") == 0) & (pl.col("cycle_no") < 8))
        .select("pidx", "cycle_no", "cycle_start")
        .pivot(on="cycle_no", index="pidx", values="cycle_start", sort_columns=True)
    )
    cols = {str(i): f"c{i + 1}" for i in range(8) if str(i) in starts.columns}
    starts = starts.rename(cols)
    for i in range(1, 9):
        if f"c{i}" not in starts.columns:
            starts = starts.with_columns(pl.lit(None, dtype=pl.Date).alias(f"c{i}"))
    s = _Stream(seed, "reviews")
    rp = p.select("pidx", "patient_id", "review_variant", "n_cycles_c0").join(
        starts, on="pidx", how="left", maintain_order="left"
    )
    rp = s.add(rp, "day", "which", "note")
    var = pl.col("review_variant")
    window_days = (pl.col("c7") - pl.col("c3")).dt.total_days()
    # "random": the start of a cycle from the 2nd to the last, plus 0-10 days
    which = _randint(_u("which"), 1, pl.col("n_cycles_c0") - 1)
    random_start: pl.Expr = pl.lit(None, dtype=pl.Date)
    for i in range(8, 0, -1):
        random_start = pl.when(which == i - 1).then(pl.col(f"c{i}")).otherwise(random_start)
    on = (
        pl.when(var == "inside")
        .then(pl.col("c3") + pl.duration(days=(_u("day") * (window_days + 1)).floor().cast(pl.Int64)))
        .when(var == "on_c3")
        .then(pl.col("c3"))
        .when(var == "on_c7")
        .then(pl.col("c7"))
        .when(var == "early")
        .then(pl.col("c2") + pl.duration(days=_randint(_u("day"), 3, 12)))
        .when(var == "late")
        .then(pl.min_horizontal(pl.col("c7") + pl.duration(days=_randint(_u("day"), 1, 10)), pl.lit(as_of)))
        .when(var == "random")
        .then(random_start + pl.duration(days=_randint(_u("day"), 0, 10)))
        .otherwise(None)
    )
    rev = rp.filter(var != "none").select(
        _pidx=pl.col("pidx"),
        patient_id=pl.col("patient_id"),
        reviewed_on=on.dt.strftime("%Y-%m-%d"),
        note=_choose(_u("note"), REVIEW_NOTES),
        _on=on,
    )
    rev = rev.sort(["_on", "_pidx"], maintain_order=True)
    return rev.with_columns(_key=pl.int_range(0, pl.len(), dtype=pl.Int64).cast(pl.Float64))


def _count(n_patients: int, rate: float) -> int:
    return max(1, math.floor(n_patients * rate + 0.5))


def _pick_rows(frame: pl.DataFrame, k: int, u: pl.Series) -> pl.DataFrame:
    idx = (u.head(k) * frame.height).floor().cast(pl.Int64).clip(0, frame.height - 1)
    return frame[idx]


def _pick_index(pool: pl.Series, u: pl.Series) -> pl.Series:
    """Distinct entries of ``pool`` (row numbers) picked by the uniforms ``u``."""
    at = (u * pool.len()).floor().cast(pl.Int64).clip(0, pool.len() - 1)
    return pool.gather(at).unique(maintain_order=True)


def _add_infusion_mess(rows: pl.DataFrame, n_patients: int, seed: int, problems: dict[str, int]) -> pl.DataFrame:
    s = _Stream(seed, "messy-infusions")
    k = _count(n_patients, MESSY_RATE)
    in_scope = rows.select(pl.arg_where(pl.col("_in_scope"))).to_series().cast(pl.Int64)
    oos = rows.select(pl.arg_where(~pl.col("_in_scope"))).to_series().cast(pl.Int64)
    # Report-safety values on valid rows (audited normally). These rows are not copied below, so
    # each such value appears exactly on the counted rows.
    for kind, site in (("formula_site", FORMULA_SITE), ("control_char_site", CONTROL_CHAR_SITE)):
        u_pick = s.uniform(k)
        if in_scope.len() == 0:
            problems[kind] = 0
            continue
        idx = _pick_index(in_scope, u_pick)
        hit = pl.repeat(False, rows.height, eager=True).scatter(idx, True)
        rows = rows.with_columns(site=pl.when(hit).then(pl.lit(site)).otherwise(pl.col("site")))
        problems[kind] = idx.len()
        in_scope = in_scope.filter(~in_scope.is_in(idx.implode()))
    next_id = rows.height + 1
    extras: list[pl.DataFrame] = []
    for kind in EXTRA_ROW_KINDS:
        u_pick, u_val = s.uniform(k), s.uniform(k)
        pool = oos if kind == "admin_id_conflict" else in_scope
        if pool.len() == 0:
            problems[kind] = 0
            continue
        src = rows[_pick_index(pool, u_pick)]
        src = src.with_columns(u_val.head(src.height).alias("_u"))
        if kind not in ("exact_duplicate", "admin_id_conflict"):
            src = src.with_columns(
                admin_id=pl.lit("A") + (pl.int_range(0, pl.len()) + next_id).cast(pl.String).str.zfill(7)
            )
            next_id += src.height
        change: dict[str, pl.Expr] = {
            "unparsable_date": {"administered_at": _choose(pl.col("_u"), BAD_DATE_TEXTS)},
            "dose_zero": {"dose": pl.lit("0")},
            "dose_negative": {"dose": pl.lit("-") + pl.col("dose")},
            "unknown_dose_unit": {"dose_unit": pl.lit("units")},
            "unknown_product": {"product": pl.lit("Hizentra")},
            "formula_product": {"product": pl.lit(FORMULA_PRODUCT)},
            "weight_zero": {"weight": pl.lit("0"), "weight_unit": pl.lit("kg")},
            "weight_500kg": {"weight": pl.lit("500"), "weight_unit": pl.lit("kg")},
            "height_20cm": {"height": pl.lit("20"), "height_unit": pl.lit("cm")},
            "future_date": {"administered_at": (pl.col("_at") + pl.duration(days=3653)).dt.strftime("%Y-%m-%d %H:%M")},
            "admin_id_conflict": {"dose": (pl.col("_dose_g") + 10).cast(pl.String), "dose_unit": pl.lit("g")},
            "exact_duplicate": {},
        }[kind]
        src = src.with_columns(**change).drop("_u")
        src = src.with_columns(_key=pl.col("_key") + 0.5)
        problems[kind] = src.height
        extras.append(src)
    if not extras:
        return rows
    # Each extra row goes right after the row it was copied from.
    keep = [*INFUSION_COLUMNS, "_key"]
    extra = pl.concat(extras, how="vertical").select(keep).sort("_key", maintain_order=True)
    return rows.select(keep).set_sorted("_key").merge_sorted(extra.set_sorted("_key"), key="_key")


def _add_lab_mess(labs: pl.DataFrame, n_patients: int, seed: int, problems: dict[str, int]) -> pl.DataFrame:
    s = _Stream(seed, "messy-labs")
    k = _count(n_patients, LAB_MESSY_RATE)
    pool = labs.filter(pl.col("_is_iga"))
    extras = []
    for kind, change in (
        ("lab_unparsable_date", {"collected_at": pl.lit("2025-02-30")}),
        ("lab_bad_value", {"value": pl.lit("hemolysed")}),
        ("lab_unknown_unit", {"unit": pl.lit("mmol/L")}),
    ):
        u_pick = s.uniform(k)
        if pool.height == 0:
            problems[kind] = 0
            continue
        src = pool[_pick_index(pl.int_range(0, pool.height, dtype=pl.Int64, eager=True), u_pick)]
        src = src.with_columns(**change, _key=pl.col("_key") + 0.5)
        problems[kind] = src.height
        extras.append(src)
    return pl.concat([labs, *extras], how="vertical").sort("_key", maintain_order=True)


def _add_review_mess(rev: pl.DataFrame, n_patients: int, seed: int, problems: dict[str, int]) -> pl.DataFrame:
    s = _Stream(seed, "messy-reviews")
    u_pick, u_notes = s.uniform(1), s.uniform(len(FORMULA_NOTES))
    if rev.height == 0:
        problems["review_unparsable_date"] = 0
        problems["review_formula_note"] = 0
        return rev
    bad = _pick_rows(rev, 1, u_pick).with_columns(reviewed_on=pl.lit("2025-02-30"), _key=pl.col("_key") + 0.5)
    keys = _pick_rows(rev, len(FORMULA_NOTES), u_notes)["_key"].unique(maintain_order=True).to_list()
    note = pl.col("note")
    for key, text in zip(keys, FORMULA_NOTES, strict=False):
        note = pl.when(pl.col("_key") == key).then(pl.lit(text)).otherwise(note)
    rev = rev.with_columns(note=note)
    problems["review_unparsable_date"] = bad.height
    problems["review_formula_note"] = len(keys)
    return pl.concat([rev, bad], how="vertical").sort("_key", maintain_order=True)


def _build(
    n_patients: int,
    seed: int,
    as_of: dt.date,
    messy: bool,
    verbose: bool = False,
    t0: float | None = None,
    keep_truth: bool = True,
) -> _World:
    if n_patients < 1:
        raise ValueError("n_patients must be at least 1")
    t0 = time.perf_counter() if t0 is None else t0
    p = _build_patients(n_patients, seed)
    _log(verbose, t0, f"{p.height} patients")
    c = _build_cycles(p, seed)
    d = _build_days(c, p, seed, as_of)
    _log(verbose, t0, f"{c.height} cycles, {d.height} infusion days")
    # Per-patient dates (d is in patient order): first dose, last dose, second course start.
    first_day = d.filter(_first_of_run(pl.col("pidx")))
    last_day = d.filter(_last_of_run(pl.col("pidx")))
    p = p.with_columns(
        first_date_p=first_day["first_date"],
        first_at=first_day["first_date"].cast(pl.Datetime("us")) + pl.duration(minutes=pl.lit(first_day["start_min"])),
        last_date=last_day["day_date"],
    )
    c = c.with_columns(cycle_start=p["first_date_p"].gather(c["pidx"]) + pl.duration(days=pl.col("cycle_offset")))
    c2 = c.filter((pl.col("course_no") == 1) & (pl.col("cycle_no") == 0)).select("pidx", c2_first_date="cycle_start")
    p = p.join(c2, on="pidx", how="left", maintain_order="left")
    birth = pl.col("first_date_p") - pl.duration(days=(pl.col("age_years") * 365.25).floor().cast(pl.Int64))
    p = p.with_columns(
        birth_date_str=pl.when(pl.col("has_birth_date")).then(birth.dt.strftime("%Y-%m-%d")).otherwise(None)
    )
    rows = _build_rows(d, c, p, seed)
    _log(verbose, t0, f"{rows.height} infusion rows")
    labs, events = _build_labs(p, seed, as_of)
    reviews = _build_reviews(p, c, seed, as_of)
    _log(verbose, t0, f"{labs.height} lab rows, {reviews.height} reviews")
    if not keep_truth:  # free memory before the big copies below
        c, d = c.clear(), d.clear()
    review_dates = reviews.select(pidx=pl.col("_pidx"), reviewed_on=pl.col("_on"))
    problems: dict[str, int] = {}
    if messy:
        rows = _add_infusion_mess(rows, n_patients, seed, problems)
        labs = _add_lab_mess(labs, n_patients, seed, problems)
        reviews = _add_review_mess(reviews, n_patients, seed, problems)
        _log(verbose, t0, f"deliberate problems added: {sum(problems.values())}")
    return _World(
        infusions=rows.select(INFUSION_COLUMNS),
        labs=labs.select(LAB_COLUMNS),
        reviews=reviews.select(REVIEW_COLUMNS),
        cycles=c,
        days=d,
        iga_events=events,
        review_dates=review_dates,
        patients=p,
        problems=problems,
        pid_of=p.select("pidx", "patient_id"),
    )


# ------------------------------------------------------------------ the API
def generate(
    n_patients: int,
    seed: int = 42,
    *,
    as_of: dt.date = AS_OF_DEFAULT,
    messy: bool = True,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(infusions, labs, reviews) as all-string polars frames with the contract's canonical column names.

    Deterministic for a given (n_patients, seed, as_of, messy). Every dose is
    before ``as_of`` except the deliberate "future" rows. With ``messy=False``
    there are no deliberate problems; with ``messy=True`` the same clean rows
    come with a few extra bad rows (see PROBLEMS) and a few formula-like text
    values.
    """
    w = _build(n_patients, seed, as_of, messy, keep_truth=False)
    return w.infusions, w.labs, w.reviews


def patients_for_rows(n_rows: int, seed: int = 42, *, as_of: dt.date = AS_OF_DEFAULT) -> int:
    """How many patients give about ``n_rows`` infusion rows (from a 2,000-patient pilot)."""
    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    pilot = 2000
    per_patient = _build(pilot, seed, as_of, messy=False, keep_truth=False).infusions.height / pilot
    return max(1, round(n_rows / per_patient))


def _clean_text_for_xlsx(value: str) -> str:
    # Excel can't hold C0 control characters (openpyxl refuses them): drop them.
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "", value)


def _parse_dt(text: str | None) -> dt.datetime | str | None:
    if text is None:
        return None
    for fmt in ("%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"):
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            pass
    return text


def _parse_num(text: str | None) -> float | int | str | None:
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() and "." not in text else number


_FIXED_ZIP_TIME = (2026, 1, 1, 0, 0, 0)
_FIXED_PROPS_TIME = dt.datetime(2026, 1, 1)


def _write_xlsx(
    path: Path,
    df: pl.DataFrame,
    sheet: str,
    *,
    datetime_cols: Sequence[str] = (),
    date_cols: Sequence[str] = (),
    number_cols: Sequence[str] = (),
) -> None:
    """Write text cells (never formulas), real date-time cells and numbers; byte-reproducible."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    wb = Workbook(write_only=True)
    wb.properties.creator = "ivig-audit sample_data.generate"
    wb.properties.created = _FIXED_PROPS_TIME
    ws = wb.create_sheet(sheet)
    ws.append(df.columns)
    kinds = [
        "dt" if c in datetime_cols else "d" if c in date_cols else "n" if c in number_cols else "s" for c in df.columns
    ]
    for row in df.iter_rows():
        cells = []
        for kind, raw in zip(kinds, row, strict=True):
            value: Any = raw
            if kind in ("dt", "d"):
                value = _parse_dt(raw)
                if kind == "d" and isinstance(value, dt.datetime):
                    value = value.date()
            elif kind == "n":
                value = _parse_num(raw)
            if isinstance(value, str):
                value = _clean_text_for_xlsx(value)
            cell = WriteOnlyCell(ws, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # keep "=..." as text, never a formula
            elif isinstance(value, dt.datetime):
                cell.number_format = "yyyy-mm-dd hh:mm"
            elif isinstance(value, dt.date):
                cell.number_format = "yyyy-mm-dd"
            cells.append(cell)
        ws.append(cells)
    buf = io.BytesIO()
    wb.save(buf)
    _normalize_zip(buf.getvalue(), path)


def _normalize_zip(data: bytes, path: Path) -> None:
    """Rewrite an xlsx with fixed timestamps so the same data gives the same bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                    rb"\g<1>2026-01-01T00:00:00Z\g<2>",
                    content,
                )
            zi = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            zi.compress_type = zipfile.ZIP_DEFLATED
            dst.writestr(zi, content)
    path.write_bytes(out.getvalue())


def _write_frame(df: pl.DataFrame, path: Path, fmt: str, sheet: str) -> None:
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "parquet":
        df.write_parquet(path)
    elif fmt == "xlsx":
        _write_xlsx(
            path,
            df,
            sheet,
            datetime_cols=[c for c in ("administered_at", "collected_at") if c in df.columns],
            date_cols=[c for c in ("birth_date", "reviewed_on") if c in df.columns],
        )
    else:
        raise ValueError(f"unknown format {fmt!r}: use csv, parquet or xlsx")


def write_sample(
    out_dir: Path,
    n_patients: int,
    seed: int,
    fmt: str = "csv",
    *,
    as_of: dt.date = AS_OF_DEFAULT,
    messy: bool = True,
    with_expected: bool = False,
    verbose: bool = False,
) -> dict[str, Path]:
    """Write infusions/labs/reviews (and optionally the expected outcome) to out_dir; return the paths.

    ``fmt`` is csv, parquet or xlsx (xlsx: date-times as real Excel cells, text
    never turned into formulas, control characters dropped).
    """
    if fmt not in ("csv", "parquet", "xlsx"):
        raise ValueError(f"unknown format {fmt!r}: use csv, parquet or xlsx")
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = _build(n_patients, seed, as_of, messy, verbose, t0, keep_truth=with_expected)
    paths: dict[str, Path] = {}
    for name, frame in (("infusions", world.infusions), ("labs", world.labs), ("reviews", world.reviews)):
        path = out_dir / f"{name}.{fmt}"
        _write_frame(frame, path, fmt, name)
        paths[name] = path
        _log(verbose, t0, f"wrote {path} ({frame.height} rows)")
    if with_expected:
        summary, exceptions = _expected_from_world(world, n_patients, seed, as_of, messy)
        paths["expected"] = out_dir / "expected.json"
        paths["expected"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        paths["expected_exceptions"] = out_dir / "expected_exceptions.csv"
        exceptions.write_csv(paths["expected_exceptions"])
        _log(verbose, t0, f"wrote {paths['expected']} and {paths['expected_exceptions']}")
    return paths


def site_b_frames(
    n_patients: int, seed: int, *, as_of: dt.date = AS_OF_DEFAULT
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Site B's export: (infusions with site B's column names, mapping source->canonical, labs)."""
    inf, labs, _ = generate(n_patients, seed, as_of=as_of, messy=True)
    # Site B's MRNs are 8-digit numbers with leading zeros (must stay text), its ids "RX...".
    mrn = pl.lit("00") + pl.col("patient_id").str.slice(1)
    site_names = [name for name, _ in ADULT_SITES] + [PEDIATRIC_SITE]
    inf = inf.with_columns(
        patient_id=mrn,
        admin_id=pl.lit("RX") + pl.col("admin_id").str.slice(1),
        site=pl.when(pl.col("site").is_in(site_names)).then(pl.lit(SITE_B_NAME)).otherwise(pl.col("site")),
    )
    lot = pl.lit("LOT") + (pl.col("admin_id").str.slice(2).cast(pl.Int64) * 37 % 9000 + 1000).cast(pl.String)
    inf = inf.with_columns(lot.alias("Lot #"))
    renames = {canon: src for src, canon in SITE_B_COLUMNS if canon is not None}
    inf = inf.rename(renames).select([src for src, _ in SITE_B_COLUMNS])
    mapping = pl.DataFrame(
        {
            "source": [src for src, canon in SITE_B_COLUMNS if canon is not None],
            "canonical": [canon for _, canon in SITE_B_COLUMNS if canon is not None],
        }
    )
    labs = labs.with_columns(patient_id=pl.lit("00") + pl.col("patient_id").str.slice(1))
    return inf, mapping, labs


def write_site_b(out_dir: Path, n_patients: int, seed: int, *, as_of: dt.date = AS_OF_DEFAULT) -> dict[str, Path]:
    """Write site B's export: infusions.xlsx (own column names, Excel date-times), mapping.csv, labs.parquet."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    inf, mapping, labs = site_b_frames(n_patients, seed, as_of=as_of)
    paths = {
        "infusions": out_dir / "infusions.xlsx",
        "mapping": out_dir / "mapping.csv",
        "labs": out_dir / "labs.parquet",
    }
    _write_xlsx(
        paths["infusions"],
        inf,
        "IVIG Administrations",
        datetime_cols=["Admin Date/Time"],
        date_cols=["DOB"],
        number_cols=["Amount", "Wt", "Ht", "Rate"],
    )
    mapping.write_csv(paths["mapping"])
    labs.write_parquet(paths["labs"])
    return paths


# ------------------------------------------------------- expected outcome
def _command(n_patients: int, seed: int, as_of: dt.date, messy: bool) -> str:
    """The CLI command that writes this data set (and its expectations) to DIR."""
    cmd = f"python -m sample_data.generate --patients {n_patients} --seed {seed} --out DIR --expected"
    if as_of != AS_OF_DEFAULT:
        cmd += f" --as-of {as_of.isoformat()}"
    return cmd + ("" if messy else " --clean")


def _expected_from_world(
    w: _World, n_patients: int, seed: int, as_of: dt.date, messy: bool
) -> tuple[dict[str, Any], pl.DataFrame]:
    """What a correct audit (GUIDELINE.md, mayo-2013, default period) should report for this data."""
    c = w.cycles.with_columns(_take(w.patients, ["is_in_scope", "product_canon"], w.cycles["pidx"]))
    d = w.days.join(
        c.select("ckey", "course_no", "cycle_no", "interval_days", "dw_audit", "product_canon", "is_in_scope"),
        on="ckey",
        how="left",
    )
    d_in = d.filter(pl.col("is_in_scope"))
    cyc = (
        d_in.group_by("pidx", "course_no", "cycle_no")
        .agg(
            cycle_start=pl.col("day_date").min(),
            infusion_days=pl.len(),
            total_g=pl.col("daily_g").sum(),
            max_daily_g=pl.col("daily_g").max(),
            max_gap_days=pl.col("day_gap").max(),
            interval_days=pl.col("interval_days").first(),
            dosing_weight_kg=pl.col("dw_audit").first(),
            product=pl.col("product_canon").first(),
            first_min=pl.col("start_min").filter(pl.col("day_no") == 0).first(),
        )
        .sort("pidx", "course_no", "cycle_no")
    )
    cyc = cyc.with_columns(
        first_admin_at=pl.col("cycle_start").cast(pl.Datetime("us")) + pl.duration(minutes=pl.col("first_min")),
        g_per_kg=pl.col("total_g") / pl.col("dosing_weight_kg"),
        max_daily_g_per_kg=pl.col("max_daily_g") / pl.col("dosing_weight_kg"),
    )
    # IgA: latest result at or before the first administration (date-only = 00:00).
    ev = w.iga_events.sort("collected_dt")
    cyc = cyc.sort("first_admin_at").join_asof(
        ev,
        left_on="first_admin_at",
        right_on="collected_dt",
        by="pidx",
        strategy="backward",
        check_sortedness=False,
    )
    # Reviews between the starts of cycle 3 and cycle 7 of the course.
    c3 = cyc.filter(pl.col("cycle_no") == 2).select("pidx", "course_no", c3_start=pl.col("cycle_start"))
    cyc = cyc.join(c3, on=["pidx", "course_no"], how="left")
    win = (
        cyc.filter(pl.col("cycle_no") == 6)
        .select("pidx", "course_no", "c3_start", c7_start=pl.col("cycle_start"))
        .join(w.review_dates, on="pidx", how="inner")
        .filter(pl.col("reviewed_on").is_between(pl.col("c3_start"), pl.col("c7_start")))
        .select("pidx", "course_no")
        .unique()
        .with_columns(has_review=pl.lit(True))
    )
    cyc = cyc.join(win, on=["pidx", "course_no"], how="left").with_columns(pl.col("has_review").fill_null(False))
    known = pl.col("dosing_weight_kg").is_not_null()
    later = pl.col("cycle_no") >= 1
    rules: dict[str, pl.Expr] = {
        "DOSE_ABOVE_MAX": known & (pl.col("g_per_kg") > 2.0 * (1 + _TOL)),
        "DOSE_BELOW_MIN": known & (pl.col("g_per_kg") < 1.0 * (1 - _TOL)),
        "DAILY_DOSE_ABOVE_MAX": known & (pl.col("max_daily_g_per_kg") > 1.0 * (1 + _TOL)),
        "LARGE_DOSE_NOT_SPREAD": (pl.col("total_g") > 80) & (pl.col("infusion_days") < 3),
        "DAYS_NOT_CONSECUTIVE": pl.col("max_gap_days") > 1,
        "TOO_MANY_INFUSION_DAYS": pl.col("infusion_days") > 5,
        "DOSING_WEIGHT_UNKNOWN": ~known,
        "IGA_NOT_SCREENED": (pl.col("cycle_no") == 0) & pl.col("collected_dt").is_null(),
        "IGA_DEFICIENT_STANDARD_PRODUCT": pl.col("is_deficient").fill_null(False)
        & (pl.col("product") != "Gammagard S/D"),
        "CYCLE_INTERVAL_SHORT": later & (pl.col("interval_days") < 21),
        "CYCLE_INTERVAL_LONG": later & (pl.col("interval_days") > 35),
        "COURSE_BEYOND_6_CYCLES_NO_REVIEW": (pl.col("cycle_no") == 6) & ~pl.col("has_review"),
    }
    cyc = cyc.with_columns(**rules)
    cyc = cyc.join(w.pid_of, on="pidx", how="left").sort("pidx", "course_no", "cycle_no")
    cyc = cyc.with_columns(
        course_id=pl.col("patient_id") + "-C" + (pl.col("course_no") + 1).cast(pl.String),
        cycle_number=pl.col("cycle_no") + 1,
    )
    exceptions = (
        cyc.unpivot(
            index=["patient_id", "course_id", "cycle_number", "cycle_start"],
            on=list(rules),
            variable_name="rule_code",
            value_name="fires",
        )
        .filter(pl.col("fires"))
        .with_columns(
            severity=pl.col("rule_code").replace_strict(_RULE_SEVERITY),
            cycle_start=pl.col("cycle_start").dt.strftime("%Y-%m-%d"),
        )
        .select("rule_code", "severity", "patient_id", "course_id", "cycle_number", "cycle_start")
        .sort("patient_id", "course_id", "cycle_number", "rule_code")
    )
    by_rule = {code: int(cyc[code].sum()) for code in rules}
    by_severity = {
        sev: sum(v for c, v in by_rule.items() if _RULE_SEVERITY[c] == sev) for sev in ("high", "medium", "low")
    }
    cycles_with = int(cyc.select(pl.any_horizontal(list(rules))).to_series().sum())
    pat = w.patients
    rows_total = w.infusions.height
    out_of_scope_rows = int(d.filter(~pl.col("is_in_scope")).select(pl.col("n_bags").sum()).item() or 0)
    clean_rows = int(d.select(pl.col("n_bags").sum()).item())
    dup = w.problems.get("exact_duplicate", 0)
    rejected = sum(w.problems.get(k, 0) for k in REJECTED_KINDS)
    conflict = w.problems.get("admin_id_conflict", 0)
    audited = clean_rows - out_of_scope_rows
    summary: dict[str, Any] = {
        "generator": {
            "command": _command(n_patients, seed, as_of, messy),
            "n_patients": n_patients,
            "seed": seed,
            "as_of": as_of.isoformat(),
            "messy": messy,
        },
        "rows": {
            "infusions": rows_total,
            "labs": w.labs.height,
            "reviews": w.reviews.height,
        },
        "reconciliation": {
            "rows_read": rows_total,
            "rows_audited": audited,
            "rows_out_of_scope": out_of_scope_rows,
            "rows_rejected": rejected,
            "rows_duplicate": dup,
            "note": (
                f"{conflict} admin_id_conflict row(s) repeat the admin_id of an out-of-scope row with a different "
                "dose. Counted here as rejected, with the original row out of scope; an audit that rejects both "
                f"rows of a conflicting pair reports rows_rejected {rejected + conflict} and rows_out_of_scope "
                f"{out_of_scope_rows - conflict}. Either way no in-scope row and no exception changes."
            ),
        },
        "labs": {
            "iga_rows_valid": int(w.iga_events.height),
            "other_test_rows": int(
                w.labs.height - w.iga_events.height - sum(w.problems.get(k, 0) for k, _ in LAB_PROBLEMS)
            ),
            "bad_rows": {k: w.problems.get(k, 0) for k, _ in LAB_PROBLEMS},
        },
        "reviews": {
            "valid_rows": int(w.review_dates.height),
            "problems": {k: w.problems.get(k, 0) for k, _ in REVIEW_PROBLEMS},
        },
        "deliberate_problems": {k: w.problems.get(k, 0) for k, _, _ in PROBLEMS},
        "patients": {
            "total": n_patients,
            "in_scope": int(pat["is_in_scope"].sum()),
            "by_scenario": {name: int((pat["scenario"] == name).sum()) for name, _ in SCENARIOS},
        },
        "courses_audited": int(cyc.select(pl.struct("pidx", "course_no").n_unique()).item()),
        "cycles_audited": cyc.height,
        "cycles_with_exception": cycles_with,
        "exceptions_total": int(sum(by_rule.values())),
        "exceptions_by_rule": by_rule,
        "exceptions_by_severity": by_severity,
    }
    return summary, exceptions


def expected_outcome(
    n_patients: int, seed: int = 42, *, as_of: dt.date = AS_OF_DEFAULT, messy: bool = True
) -> tuple[dict[str, Any], pl.DataFrame]:
    """(summary dict, expected exceptions frame) a correct audit of ``generate(...)`` should produce.

    Computed from the generator's own clean tables with the numbers of
    GUIDELINE.md (profile mayo-2013, default period), not from the audit code.
    """
    w = _build(n_patients, seed, as_of, messy)
    return _expected_from_world(w, n_patients, seed, as_of, messy)


# ---------------------------------------------------------------------- CLI
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m sample_data.generate",
        description="Write a seeded synthetic IVIG pharmacy export (infusions, labs, reviews). Never real patients.",
    )
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--patients", type=int, default=None, help="number of patients (default 300)")
    size.add_argument("--rows", type=int, default=None, help="aim for about this many infusion rows instead")
    ap.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    ap.add_argument("--out", type=Path, required=True, help="output directory (created if missing)")
    ap.add_argument("--format", choices=("csv", "parquet", "xlsx"), default="csv", help="file format (default csv)")
    ap.add_argument(
        "--as-of",
        type=dt.date.fromisoformat,
        default=AS_OF_DEFAULT,
        help="export date, YYYY-MM-DD (default 2026-10-31)",
    )
    ap.add_argument("--clean", action="store_true", help="no deliberate problems (messy=False)")
    ap.add_argument("--expected", action="store_true", help="also write expected.json and expected_exceptions.csv")
    ap.add_argument(
        "--site-b",
        action="store_true",
        help="write site B's layout instead: infusions.xlsx with its own column names, mapping.csv, labs.parquet",
    )
    ap.add_argument("--verbose", action="store_true", help="print progress to stderr")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    t0 = time.perf_counter()
    if args.rows is not None:
        n_patients = patients_for_rows(args.rows, args.seed, as_of=args.as_of)
        _log(args.verbose, t0, f"{args.rows} rows -> {n_patients} patients")
    else:
        n_patients = 300 if args.patients is None else args.patients
    if n_patients < 1:
        print("Error: --patients must be at least 1", file=sys.stderr)
        return 2
    if args.site_b:
        paths = write_site_b(args.out, n_patients, args.seed, as_of=args.as_of)
    else:
        paths = write_sample(
            args.out,
            n_patients,
            args.seed,
            args.format,
            as_of=args.as_of,
            messy=not args.clean,
            with_expected=args.expected,
            verbose=args.verbose,
        )
    _log(args.verbose, t0, "done: " + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
