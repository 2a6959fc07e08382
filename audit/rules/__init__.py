"""One small pure function per rule, and the explicit table of them."""

from __future__ import annotations

from audit.rules.base import RuleFn, RuleInput
from audit.rules.dose import (
    daily_dose_above_max,
    dose_above_max,
    dose_below_min,
    dosing_weight_unknown,
    large_dose_not_spread,
)
from audit.rules.iga import iga_deficient_standard_product, iga_not_screened
from audit.rules.schedule import (
    course_beyond_cycles_no_review,
    cycle_interval_long,
    cycle_interval_short,
    days_not_consecutive,
    too_many_infusion_days,
)

#: (rule code, function), in report order. The codes match audit.guideline.RULE_CODES.
RULES: tuple[tuple[str, RuleFn], ...] = (
    ("DOSE_ABOVE_MAX", dose_above_max),
    ("DOSE_BELOW_MIN", dose_below_min),
    ("DAILY_DOSE_ABOVE_MAX", daily_dose_above_max),
    ("LARGE_DOSE_NOT_SPREAD", large_dose_not_spread),
    ("DAYS_NOT_CONSECUTIVE", days_not_consecutive),
    ("TOO_MANY_INFUSION_DAYS", too_many_infusion_days),
    ("DOSING_WEIGHT_UNKNOWN", dosing_weight_unknown),
    ("IGA_NOT_SCREENED", iga_not_screened),
    ("IGA_DEFICIENT_STANDARD_PRODUCT", iga_deficient_standard_product),
    ("CYCLE_INTERVAL_SHORT", cycle_interval_short),
    ("CYCLE_INTERVAL_LONG", cycle_interval_long),
    ("COURSE_BEYOND_6_CYCLES_NO_REVIEW", course_beyond_cycles_no_review),
)

__all__ = ["RULES", "RuleFn", "RuleInput"]
