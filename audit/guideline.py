"""Guideline profiles: frozen, typed configuration parsed from TOML text.

Every number a rule uses lives in a profile file (``audit/guidelines/*.toml``)
with its unit and source. This module only parses text; reading files is the
caller's business (see ``validators.guideline_source``).
"""

from __future__ import annotations

import tomllib
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Severity = Literal["high", "medium", "low"]
SEVERITY_ORDER: dict[str, int] = {"high": 0, "medium": 1, "low": 2}

#: Every rule code the engine knows, in report order. Codes are never reused.
RULE_CODES: tuple[str, ...] = (
    "DOSE_ABOVE_MAX",
    "DOSE_BELOW_MIN",
    "DAILY_DOSE_ABOVE_MAX",
    "LARGE_DOSE_NOT_SPREAD",
    "DAYS_NOT_CONSECUTIVE",
    "TOO_MANY_INFUSION_DAYS",
    "DOSING_WEIGHT_UNKNOWN",
    "IGA_NOT_SCREENED",
    "IGA_DEFICIENT_STANDARD_PRODUCT",
    "CYCLE_INTERVAL_SHORT",
    "CYCLE_INTERVAL_LONG",
    "COURSE_BEYOND_6_CYCLES_NO_REVIEW",
)

#: Parameters every profile must define (the engine and the validators read them).
REQUIRED_PARAMETERS: tuple[str, ...] = (
    "cycle_gap_max_days",
    "course_gap_max_days",
    "ibw_base_male_kg",
    "ibw_base_female_kg",
    "ibw_kg_per_inch",
    "ibw_base_height_in",
    "adult_age_years",
    "short_height_cm",
    "max_g_per_kg",
    "min_g_per_kg",
    "max_daily_g_per_kg",
    "dose_tolerance_fraction",
    "large_dose_g",
    "large_dose_min_days",
    "max_gap_within_cycle_days",
    "max_infusion_days",
    "iga_deficiency_mg_dl",
    "min_interval_days",
    "max_interval_days",
    "max_cycles_without_review",
    "review_window_start_cycle",
    "min_weight_kg",
    "max_weight_kg",
    "min_height_cm",
    "max_height_cm",
)


class GuidelineError(ValueError):
    """A guideline profile can't be used; the message says which part and why."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Profile(_Frozen):
    name: str
    version: str
    title: str
    indication: str


class Source(_Frozen):
    id: str
    citation: str


class Parameter(_Frozen):
    value: float
    unit: str
    source: str
    section: str
    note: str = ""


class Scope(_Frozen):
    icd10_prefixes: tuple[str, ...]
    text_terms: tuple[str, ...]
    source: str
    section: str


class Product(_Frozen):
    name: str
    aliases: tuple[str, ...] = ()
    concentration_g_per_ml: float = Field(gt=0)
    is_iga_reduced: bool
    iga_ug_per_ml_max: float | None = None
    vial_sizes_g: tuple[float, ...] = ()
    source: str


class Rule(_Frozen):
    severity: Severity
    description: str
    parameters: tuple[str, ...] = ()
    source: str
    enabled: bool = True


class Cost(_Frozen):
    currency: str = "USD"
    price_per_g: float | None = Field(default=None, ge=0)
    source: str = ""


class Guideline(_Frozen):
    profile: Profile
    sources: tuple[Source, ...]
    parameters: dict[str, Parameter]
    scope: Scope
    products: tuple[Product, ...]
    rules: dict[str, Rule]
    cost: Cost = Cost()

    @model_validator(mode="after")
    def _check_references(self) -> Guideline:
        source_ids = {s.id for s in self.sources}
        missing = [p for p in REQUIRED_PARAMETERS if p not in self.parameters]
        if missing:
            raise ValueError(f"missing parameters: {', '.join(missing)}")
        unknown_rules = sorted(set(self.rules) - set(RULE_CODES))
        if unknown_rules:
            raise ValueError(f"unknown rule codes: {', '.join(unknown_rules)}")
        missing_rules = [c for c in RULE_CODES if c not in self.rules]
        if missing_rules:
            raise ValueError(f"rules not configured: {', '.join(missing_rules)}")
        for name, param in self.parameters.items():
            if param.source not in source_ids:
                raise ValueError(f"parameter {name}: unknown source {param.source!r}")
        for code, rule in self.rules.items():
            if rule.source not in source_ids:
                raise ValueError(f"rule {code}: unknown source {rule.source!r}")
            for p in rule.parameters:
                if p not in self.parameters:
                    raise ValueError(f"rule {code}: unknown parameter {p!r}")
        for product in self.products:
            if product.source not in source_ids:
                raise ValueError(f"product {product.name}: unknown source {product.source!r}")
        names = [k for p in self.products for k in (p.name.casefold(), *(a.casefold() for a in p.aliases))]
        if len(names) != len(set(names)):
            raise ValueError("product names and aliases must be unique (case-insensitively)")
        return self

    def value(self, name: str) -> float:
        """The numeric value of parameter ``name``."""
        return self.parameters[name].value

    def with_value(self, name: str, value: float) -> Guideline:
        """A copy with one parameter changed (for what-if runs and tests)."""
        params = dict(self.parameters)
        params[name] = params[name].model_copy(update={"value": value})
        return self.model_copy(update={"parameters": params})

    def product_lookup(self) -> dict[str, Product]:
        """Every accepted spelling (casefolded, trimmed) mapped to its product."""
        lookup: dict[str, Product] = {}
        for product in self.products:
            for key in (product.name, *product.aliases):
                lookup[" ".join(key.casefold().split())] = product
        return lookup

    def source_citation(self, source_id: str) -> str:
        for s in self.sources:
            if s.id == source_id:
                return s.citation
        raise KeyError(source_id)

    def enabled_rules(self) -> tuple[str, ...]:
        return tuple(c for c in RULE_CODES if self.rules[c].enabled)


def parse_guideline(text: str, origin: str = "<guideline>") -> Guideline:
    """Parse a profile from TOML text; raise GuidelineError naming ``origin``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GuidelineError(f"{origin}: not valid TOML ({exc})") from None
    try:
        return Guideline.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'profile'}: {err['msg']}" for err in exc.errors()
        )
        raise GuidelineError(f"{origin}: invalid guideline profile ({problems})") from None
