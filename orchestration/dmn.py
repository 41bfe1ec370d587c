"""Export a review-gate grid as a DMN 1.3 decision table and read one back.

Pure functions, no database. The table has two inputs (``confidence``, ``impact``),
two outputs (``action``, ``sample_rate``) and one rule per (impact, band) cell, with
hit policy UNIQUE: the bands of one impact never overlap, so exactly one rule matches.

Confidence bands are FEEL ranges. A band includes its lower edge and excludes its
upper edge, except the last band, which includes 1::

    [0..0.5)   [0.5..0.8)   [0.8..0.95)   [0.95..1]

DMN 1.3 (FEEL grammar rules 8-12) spells an open interval end either ``)`` or ``[``.
We write ``)`` -- the form the spec's own examples and the common engines (Camunda,
Drools/KIE, Oracle) document -- and read both. Numbers are written as plain decimals,
never in exponent notation, because FEEL number literals have no exponent.

The critical-auto override (and its reason) is not part of DMN; it travels in the
decision's ``extensionElements`` under our own namespace so that a round trip keeps it.
Engines ignore extension elements they do not know.

Reading a document is defended against XML bombs: documents over 1 MiB and any
DOCTYPE or ENTITY declaration are refused before the text reaches the parser.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from orchestration.thresholds import ACTIONS, IMPACTS, Grid, InvalidGrid, build_grid

DMN_NS = "https://www.omg.org/spec/DMN/20191111/MODEL/"
ARBITER_NS = "https://arbiter.example/dmn"
ARBITER_PREFIX = "arbiter"
MAX_DOCUMENT_BYTES = 1024 * 1024

_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
# XML 1.0 forbids these characters anywhere in a document, even escaped.
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_DECLARATION = re.compile(r"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_FEEL_NUMBER = r"-?(?:\d+(?:\.\d*)?|\.\d+)"
_RANGE = re.compile(
    rf"\s*(?P<open>[\[\](])\s*(?P<low>{_FEEL_NUMBER})\s*\.\.\s*"
    rf"(?P<high>{_FEEL_NUMBER})\s*(?P<close>[\])\[])\s*"
)
_STRING = re.compile(r'\s*"(?P<value>[^"\\]*)"\s*')


class DmnError(ValueError):
    """A DMN document that cannot be read as a review-gate grid.

    ``problems`` lists every problem found (one sentence each); the message joins them.
    """

    def __init__(self, problems: str | list[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


# --------------------------------------------------------------------------- export


def feel_number(value: float) -> str:
    """A float as a FEEL number literal: plain decimal, shortest exact form."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{number!r} cannot be written as a FEEL number")
    text = format(Decimal(repr(number)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def feel_string(value: str) -> str:
    return f'"{value}"'


def band_range(edges: tuple[float, ...], band: int) -> str:
    """The FEEL range of a band: ``[low..high)``, the last one ``[low..1]``."""
    low = 0.0 if band == 0 else edges[band - 1]
    last = band == len(edges)
    high = 1.0 if last else edges[band]
    return f"[{feel_number(low)}..{feel_number(high)}{']' if last else ')'}"


def _check_xml_text(label: str, value: str) -> None:
    if _XML_FORBIDDEN.search(value):
        raise ValueError(f"{label} contains a control character that XML cannot carry")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def grid_to_dmn(
    grid: Grid,
    *,
    name: str,
    decision_id: str = "review_gate",
    critical_auto_override: bool = False,
    override_reason: str = "",
) -> str:
    """The grid as a DMN 1.3 XML document (a str with an XML declaration)."""
    if not _NCNAME.fullmatch(decision_id):
        raise ValueError(
            f"decision id {decision_id!r} must be an XML NCName: a letter or _ followed by "
            "letters, digits, _, - or ."
        )
    _check_xml_text("the name", name)
    _check_xml_text("the override reason", override_reason)

    # Tags are written with literal prefixes and the xmlns attributes set by hand, so
    # the output uses the DMN namespace as default and "arbiter:" for our extension
    # without touching ElementTree's process-wide prefix registry.
    root = ET.Element(
        "definitions",
        {
            "xmlns": DMN_NS,
            f"xmlns:{ARBITER_PREFIX}": ARBITER_NS,
            "id": f"definitions_{decision_id}",
            "name": name,
            "namespace": f"{ARBITER_NS}/{decision_id}",
        },
    )
    decision = _sub(root, "decision", id=decision_id, name=name)
    extensions = _sub(decision, "extensionElements")
    _sub(
        extensions,
        f"{ARBITER_PREFIX}:criticalAutoOverride",
        "true" if critical_auto_override else "false",
    )
    _sub(extensions, f"{ARBITER_PREFIX}:overrideReason", override_reason)

    table = _sub(decision, "decisionTable", id=f"{decision_id}_table", hitPolicy="UNIQUE")
    confidence = _sub(table, "input", id=f"{decision_id}_input_confidence", label="confidence")
    expression = _sub(
        confidence, "inputExpression", id=f"{decision_id}_input_confidence_expr", typeRef="number"
    )
    _sub(expression, "text", "confidence")
    impact = _sub(table, "input", id=f"{decision_id}_input_impact", label="impact")
    expression = _sub(
        impact, "inputExpression", id=f"{decision_id}_input_impact_expr", typeRef="string"
    )
    _sub(expression, "text", "impact")
    values = _sub(impact, "inputValues", id=f"{decision_id}_input_impact_values")
    _sub(values, "text", ",".join(feel_string(value) for value in IMPACTS))

    action = _sub(
        table,
        "output",
        id=f"{decision_id}_output_action",
        label="action",
        name="action",
        typeRef="string",
    )
    values = _sub(action, "outputValues", id=f"{decision_id}_output_action_values")
    _sub(values, "text", ",".join(feel_string(value) for value in ACTIONS))
    _sub(
        table,
        "output",
        id=f"{decision_id}_output_sample_rate",
        label="sample_rate",
        name="sample_rate",
        typeRef="number",
    )

    for impact_name in IMPACTS:
        for band in range(grid.bands):
            rule_id = f"{decision_id}_rule_{impact_name}_{band + 1}"
            confidence_range = band_range(grid.edges, band)
            rule = _sub(table, "rule", id=rule_id)
            _sub(rule, "description", f"{impact_name} impact, confidence {confidence_range}")
            entry = _sub(rule, "inputEntry", id=f"{rule_id}_confidence")
            _sub(entry, "text", confidence_range)
            entry = _sub(rule, "inputEntry", id=f"{rule_id}_impact")
            _sub(entry, "text", feel_string(impact_name))
            entry = _sub(rule, "outputEntry", id=f"{rule_id}_action")
            _sub(entry, "text", feel_string(grid.cells[impact_name][band]))
            entry = _sub(rule, "outputEntry", id=f"{rule_id}_sample_rate")
            _sub(entry, "text", feel_number(grid.sample_rates[impact_name][band]))

    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


# --------------------------------------------------------------------------- import


def _q(tag: str) -> str:
    return f"{{{DMN_NS}}}{tag}"


def _text_of(element: ET.Element | None) -> str | None:
    """The stripped text of an element's <text> child, or None when there is none."""
    if element is None:
        return None
    text = element.find(_q("text"))
    if text is None:
        return None
    return (text.text or "").strip()


@dataclass(frozen=True)
class _Rule:
    number: int  # 1-based position in the document
    label: str  # "rule 3" or "rule 3 (id ...)"
    low: float
    high: float
    impact: str
    action: str
    sample_rate: float

    def covers(self, low: float, high: float) -> bool:
        return self.low <= low and high <= self.high


def _parse_document(xml_text: str) -> ET.Element:
    if not isinstance(xml_text, str):
        raise DmnError(f"expected the DMN document as text, got {type(xml_text).__name__}")
    if len(xml_text) > MAX_DOCUMENT_BYTES or len(xml_text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise DmnError(
            f"the document is larger than {MAX_DOCUMENT_BYTES // (1024 * 1024)} MiB; "
            "a review-gate table is a few kilobytes"
        )
    if _DECLARATION.search(xml_text):
        raise DmnError(
            "the document contains a DOCTYPE or ENTITY declaration; these are refused "
            "(they can expand into huge documents) -- remove them"
        )
    if not xml_text.strip():
        raise DmnError("the document is empty; expected DMN 1.3 XML")
    try:
        # The text is at most 1 MiB and has no DOCTYPE/ENTITY declaration (checked
        # above), so there is nothing for expat to expand: no entity bombs, no XXE.
        return ET.fromstring(xml_text)  # noqa: S314
    except ET.ParseError as exc:
        raise DmnError(f"not well-formed XML: {exc}; expected a DMN 1.3 document") from exc


def _read_meta(decision: ET.Element) -> dict[str, Any]:
    override = False
    reason = ""
    extensions = decision.find(_q("extensionElements"))
    if extensions is not None:
        flag = extensions.find(f"{{{ARBITER_NS}}}criticalAutoOverride")
        if flag is not None:
            value = (flag.text or "").strip().lower()
            if value not in ("true", "false"):
                raise DmnError(
                    f"extension criticalAutoOverride is {flag.text!r}; write true or false"
                )
            override = value == "true"
        reason_element = extensions.find(f"{{{ARBITER_NS}}}overrideReason")
        if reason_element is not None:
            reason = reason_element.text or ""
    return {"critical_auto_override": override, "override_reason": reason}


def _find_table(root: ET.Element) -> tuple[ET.Element, ET.Element]:
    if root.tag != _q("definitions"):
        namespace, _, local = (
            root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
        )
        if local == "definitions":
            raise DmnError(
                f"the root element is in namespace {namespace or '(none)'!r}; "
                f"expected DMN 1.3 ({DMN_NS})"
            )
        raise DmnError(f"the root element is <{local}>; expected DMN 1.3 <definitions> ({DMN_NS})")
    found = [
        (decision, table)
        for decision in root.findall(_q("decision"))
        for table in decision.findall(_q("decisionTable"))
    ]
    if not found:
        raise DmnError("the document has no <decision> with a <decisionTable>")
    if len(found) > 1:
        raise DmnError(
            f"the document has {len(found)} decision tables; expected exactly one review gate"
        )
    return found[0]


def _columns(table: ET.Element) -> tuple[dict[str, int], dict[str, int]]:
    """Which position each known input and output column has."""
    problems: list[str] = []
    inputs: dict[str, int] = {}
    for index, column in enumerate(table.findall(_q("input"))):
        expression = _text_of(column.find(_q("inputExpression")))
        if expression in ("confidence", "impact") and expression not in inputs:
            inputs[expression] = index
        else:
            problems.append(
                f"input column {index + 1} ({expression or column.get('label') or 'unnamed'!r}) "
                "is not used by review gates; only confidence and impact are"
            )
    outputs: dict[str, int] = {}
    for index, column in enumerate(table.findall(_q("output"))):
        output_name = column.get("name") or column.get("label") or ""
        if output_name in ("action", "sample_rate") and output_name not in outputs:
            outputs[output_name] = index
        else:
            problems.append(
                f"output column {index + 1} ({output_name or 'unnamed'!r}) is not used by "
                "review gates; only action and sample_rate are"
            )
    for expected in ("confidence", "impact"):
        if expected not in inputs:
            problems.append(
                f"the decision table has no input column for {expected} "
                f"(an <input> whose <inputExpression> text is {expected})"
            )
    for expected in ("action", "sample_rate"):
        if expected not in outputs:
            problems.append(
                f"the decision table has no output column for {expected} "
                f'(an <output name="{expected}">)'
            )
    if problems:
        raise DmnError(problems)
    return inputs, outputs


def _read_rule(
    number: int,
    rule: ET.Element,
    inputs: dict[str, int],
    outputs: dict[str, int],
    problems: list[str],
) -> _Rule | None:
    rule_id = rule.get("id")
    label = f"rule {number}" + (f" (id {rule_id})" if rule_id else "")
    input_entries = rule.findall(_q("inputEntry"))
    output_entries = rule.findall(_q("outputEntry"))
    if len(input_entries) != len(inputs) or len(output_entries) != len(outputs):
        problems.append(
            f"{label}: has {len(input_entries)} input and {len(output_entries)} output entries; "
            f"the table has {len(inputs)} input and {len(outputs)} output columns"
        )
        return None
    before = len(problems)

    range_text = _text_of(input_entries[inputs["confidence"]]) or ""
    low = high = 0.0
    match = _RANGE.fullmatch(range_text)
    if match is None:
        problems.append(
            f"{label}: confidence entry {range_text!r} is not a FEEL range like [0.5..0.8) "
            "or [0.95..1]"
        )
    else:
        low, high = float(match["low"]), float(match["high"])
        if match["open"] != "[":
            problems.append(
                f"{label}: confidence range {range_text!r} excludes its lower edge; "
                f"bands include it: write [{match['low']}..{match['high']}{match['close']}"
            )
        if not 0 <= low < high <= 1:
            problems.append(
                f"{label}: confidence range {range_text!r} must run upwards within 0..1"
            )
        elif high == 1 and match["close"] != "]":
            problems.append(
                f"{label}: the last band must include 1: write [{match['low']}..{match['high']}]"
            )
        elif high < 1 and match["close"] == "]":
            problems.append(
                f"{label}: confidence range {range_text!r} includes its upper edge; only the "
                f"last band (ending at 1) may: write [{match['low']}..{match['high']})"
            )

    impact_text = _text_of(input_entries[inputs["impact"]]) or ""
    impact_match = _STRING.fullmatch(impact_text)
    impact = impact_match["value"] if impact_match else ""
    if impact not in IMPACTS:
        problems.append(
            f"{label}: impact entry {impact_text!r} is not one quoted impact; "
            f"use one of {', '.join(feel_string(i) for i in IMPACTS)}"
        )

    action_text = _text_of(output_entries[outputs["action"]]) or ""
    action_match = _STRING.fullmatch(action_text)
    action = action_match["value"] if action_match else ""
    if action not in ACTIONS:
        problems.append(
            f"{label}: action {action_text!r} is not one quoted action; "
            f"use one of {', '.join(feel_string(a) for a in ACTIONS)}"
        )

    rate_text = _text_of(output_entries[outputs["sample_rate"]]) or ""
    rate = 0.0
    if re.fullmatch(_FEEL_NUMBER, rate_text):
        rate = float(rate_text)
        if not 0 <= rate <= 100:
            problems.append(f"{label}: sample rate {rate_text} must be 0-100 (percent)")
    else:
        problems.append(f"{label}: sample rate {rate_text!r} is not a number")

    if len(problems) > before:
        return None
    return _Rule(number, label, low, high, impact, action, rate)


def _range_label(low: float, high: float) -> str:
    return f"[{feel_number(low)}..{feel_number(high)}{']' if high == 1 else ')'}"


def grid_from_dmn(xml_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a DMN document written by grid_to_dmn (or by hand, or by a DMN modeler).

    Returns ``(grid, meta)``: ``grid`` is ``{"edges", "cells", "sample_rates"}`` and
    ``meta`` is ``{"critical_auto_override", "override_reason"}``, such that
    ``build_grid(**grid, allow_critical_auto=meta["critical_auto_override"],
    override_reason=meta["override_reason"])`` succeeds. Raises DmnError otherwise,
    naming every problem found.
    """
    root = _parse_document(xml_text)
    decision, table = _find_table(root)
    meta = _read_meta(decision)
    hit_policy = table.get("hitPolicy", "UNIQUE")
    if hit_policy != "UNIQUE":
        raise DmnError(f"the decision table's hit policy is {hit_policy}; expected UNIQUE")
    inputs, outputs = _columns(table)

    problems: list[str] = []
    rules = [
        parsed
        for number, rule in enumerate(table.findall(_q("rule")), start=1)
        if (parsed := _read_rule(number, rule, inputs, outputs, problems)) is not None
    ]
    if problems:
        raise DmnError(problems)
    if not rules:
        raise DmnError("the decision table has no rules; expected one per impact and band")

    # Every boundary any rule uses is an edge; each impact must then have exactly one
    # rule per band, and no rule may span an edge that other rules split at.
    edges = sorted(({r.low for r in rules} | {r.high for r in rules}) - {0.0, 1.0})
    bounds = [0.0, *edges, 1.0]
    cells: dict[str, list[str]] = {}
    rates: dict[str, list[float]] = {}
    reported: set[tuple[int, ...]] = set()
    for impact in IMPACTS:
        own = [r for r in rules if r.impact == impact]
        cells[impact] = []
        rates[impact] = []
        for band in range(len(bounds) - 1):
            low, high = bounds[band], bounds[band + 1]
            where = f"{impact} impact, confidence {_range_label(low, high)}"
            covering = [r for r in own if r.covers(low, high)]
            exact = [r for r in covering if (r.low, r.high) == (low, high)]
            if len(covering) > 1:
                clash = tuple(r.number for r in covering)
                if clash not in reported:  # report a clash once, at its first band
                    reported.add(clash)
                    problems.append(
                        f"{' and '.join(r.label for r in covering)} "
                        f"{'both' if len(covering) == 2 else 'all'} cover {where}: "
                        "duplicated cell (hit policy UNIQUE needs exactly one rule per cell)"
                    )
            elif not covering:
                problems.append(f"missing cell: no rule covers {where}")
            elif not exact:
                wide = covering[0]
                if wide.low == low:  # report a too-wide rule once, at its first band
                    split = [feel_number(e) for e in edges if wide.low < e < wide.high]
                    problems.append(
                        f"bands do not line up across impacts: {wide.label} covers "
                        f"{impact} impact, confidence {_range_label(wide.low, wide.high)}, "
                        f"but other rules split confidence at {', '.join(split)}"
                    )
            if covering:
                cells[impact].append(covering[0].action)
                rates[impact].append(covering[0].sample_rate)
    if problems:
        raise DmnError(problems)
    if not edges:
        raise DmnError(
            "every rule covers the whole confidence range; at least one band edge is needed"
        )

    grid: dict[str, Any] = {"edges": edges, "cells": cells, "sample_rates": rates}
    try:
        build_grid(
            **grid,
            allow_critical_auto=meta["critical_auto_override"],
            override_reason=meta["override_reason"],
        )
    except InvalidGrid as exc:
        raise DmnError(
            [f"the table reads, but is not a valid review gate: {p}" for p in exc.problems]
        ) from exc
    return grid, meta
