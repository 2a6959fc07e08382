"""The Guideline sheet: every number the audit used, with its unit, source and section.

Sources first (the full citations, once), then parameters, rules, scope,
product catalog and cost. The Citation column repeats each row's citation on
one line for filtering on screen; printed pages stop before it, since the
Sources table at the top carries the same text in full.
"""

from __future__ import annotations

from typing import Final

from openpyxl.utils import get_column_letter

from audit.guideline import RULE_CODES, Guideline
from report.model import SHEET_GUIDELINE
from report.sheets import NOTE, SECTION, TITLE, Rows, SheetWriter, severity_label, severity_look
from report.textfit import LINE_HEIGHT, wrapped_lines
from report.xlsx_cells import Look

WIDTHS: Final = (37, 11, 14, 46, 50, 10, 60)
#: Printed pages: columns A-F (the Sources table carries the citations).
PRINT_COLUMNS: Final = 6
WRAP: Final = Look(wrap=True, valign="top")
TOP: Final = Look(valign="top")


def citation(guideline: Guideline, source_id: str) -> str:
    """The full citation of ``source_id`` (a profile is validated, so it exists)."""
    try:
        return guideline.source_citation(source_id)
    except KeyError:
        return "(source not in the profile)"


def write_guideline(writer: SheetWriter) -> int:
    """Fill the Guideline sheet; returns the number of rows written."""
    guideline = writer.data.guideline
    ws = writer.sheets[SHEET_GUIDELINE]
    writer.setup_sheet(ws, WIDTHS)
    r = Rows(writer, ws, WIDTHS)

    def bar(title: str) -> None:
        r.append([r.text(title, SECTION), *(r.filled(SECTION) for _ in range(PRINT_COLUMNS - 1))], height=18)

    profile = guideline.profile
    r.append([r.text(f"Guideline profile {profile.name}, version {profile.version}", TITLE)], height=24)
    r.append([r.text(profile.title, NOTE)])
    r.append([r.text(f"Indication: {profile.indication}", NOTE)])
    r.blank()

    bar("Sources")
    r.header(["Source", "", "", "Citation", "", ""])
    span = sum(WIDTHS[3:PRINT_COLUMNS])
    first, last = get_column_letter(4), get_column_letter(PRINT_COLUMNS)
    for source in guideline.sources:
        height = LINE_HEIGHT * wrapped_lines(source.citation, span)
        row = r.append([r.text(source.id, TOP), None, None, r.text(source.citation, WRAP)], height=height)
        ws.merged_cells.add(f"{first}{row}:{last}{row}")

    r.blank()
    bar("Parameters: every number a rule uses")
    r.header(["Parameter", "Value", "Unit", "Section of the source", "Note", "Source", "Citation"], (1,))
    for name, p in guideline.parameters.items():
        r.append(
            [
                r.text(name, TOP),
                r.number(p.value, "General", TOP),
                r.text(p.unit, TOP),
                r.text(p.section, WRAP),
                r.text(p.note, WRAP),
                r.text(p.source, TOP),
                r.text(citation(guideline, p.source), TOP),
            ]
        )

    r.blank()
    bar("Rules")
    r.header(["Rule", "Severity", "Evaluated", "What the rule checks", "Parameters", "Source", "Citation"])
    for code in [c for c in RULE_CODES if c in guideline.rules] + sorted(set(guideline.rules) - set(RULE_CODES)):
        rule = guideline.rules[code]
        r.append(
            [
                r.text(code, TOP),
                r.text(severity_label(rule.severity), severity_look(rule.severity, valign="top")),
                r.text("yes" if rule.enabled else "no (disabled)", TOP),
                r.text(rule.description, WRAP),
                r.text(", ".join(rule.parameters) or "none", WRAP),
                r.text(rule.source, TOP),
                r.text(citation(guideline, rule.source), TOP),
            ]
        )

    r.blank()
    bar("Scope: only these administrations are audited")
    scope = guideline.scope
    r.header(["What", "", "", "Matches", "Section of the source", "Source", "Citation"])
    for label, value in (
        ("ICD-10-CM code starts with", ", ".join(scope.icd10_prefixes) + " (with or without the dot)"),
        ("Indication text contains (any case)", ", ".join(scope.text_terms)),
    ):
        r.append(
            [
                r.text(label, TOP),
                None,
                None,
                r.text(value, WRAP),
                r.text(scope.section, WRAP),
                r.text(scope.source, TOP),
                r.text(citation(guideline, scope.source), TOP),
            ]
        )

    r.blank()
    bar("Product catalog")
    r.header(
        [
            "Product",
            "IgA-reduced",
            "Concentration (g/mL)",
            "Also matched as",
            "Vial sizes (g)",
            "Source",
            "IgA content, max (µg/mL)",
        ],
        (2,),
    )
    for product in guideline.products:
        iga = product.iga_ug_per_ml_max
        iga_cell = r.text("not stated", TOP) if iga is None else r.number(iga, "General", TOP)
        r.append(
            [
                r.text(product.name, TOP),
                r.text("yes" if product.is_iga_reduced else "no", TOP),
                r.number(product.concentration_g_per_ml, "0.00", TOP),
                r.text(", ".join(product.aliases) or "-", WRAP),
                r.text(", ".join(f"{v:g}" for v in product.vial_sizes_g) or "-", WRAP),
                r.text(product.source, TOP),
                iga_cell,
            ]
        )

    r.blank()
    bar("Cost")
    cost = guideline.cost
    r.pair("Currency", r.text(cost.currency))
    price = cost.price_per_g
    r.pair("Price per gram", r.text("not set in the profile") if price is None else r.number(price, "#,##0.00"))
    if cost.source:
        r.pair("Source", r.text(cost.source))
    ws.print_area = f"A1:{get_column_letter(PRINT_COLUMNS)}{r.row}"
    return r.row
