"""DMN 1.3 export and import of the review-gate grid: pure functions, no database."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestration.dmn import (
    ARBITER_NS,
    DMN_NS,
    MAX_DOCUMENT_BYTES,
    DmnError,
    grid_from_dmn,
    grid_to_dmn,
)
from orchestration.thresholds import ACTIONS, DEFAULT_GRID, IMPACTS, Grid, build_grid

NS = {"dmn": DMN_NS, "arbiter": ARBITER_NS}


def parse(text: str) -> ET.Element:
    # Our own export in a test, never outside input: nothing to defend against.
    return ET.fromstring(text)  # noqa: S314


def serialize(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")


def round_trip(grid: Grid, **kwargs) -> tuple[Grid, dict]:
    data, meta = grid_from_dmn(grid_to_dmn(grid, name="Gate", **kwargs))
    rebuilt = build_grid(
        **data,
        allow_critical_auto=meta["critical_auto_override"],
        override_reason=meta["override_reason"],
    )
    return rebuilt, meta


def table_of(root: ET.Element) -> ET.Element:
    table = root.find("dmn:decision/dmn:decisionTable", NS)
    assert table is not None
    return table


def rules_of(root: ET.Element) -> list[ET.Element]:
    return table_of(root).findall("dmn:rule", NS)


def entry_text(rule: ET.Element, kind: str, index: int) -> ET.Element:
    text = rule.findall(f"dmn:{kind}", NS)[index].find("dmn:text", NS)
    assert text is not None
    return text


@st.composite
def grids(draw: st.DrawFn) -> Grid:
    edges = draw(
        st.lists(
            st.floats(min_value=0, max_value=1, exclude_min=True, exclude_max=True)
            .map(lambda value: round(value, 4))
            .filter(lambda value: 0 < value < 1),
            min_size=1,
            max_size=5,
            unique=True,
        )
    )
    edges.sort()
    bands = len(edges) + 1
    cells: dict[str, list[str]] = {}
    rates: dict[str, list[float]] = {}
    for impact in IMPACTS:
        choices = [a for a in ACTIONS if a != "auto"] if impact == "critical" else list(ACTIONS)
        row = draw(st.lists(st.sampled_from(choices), min_size=bands, max_size=bands))
        cells[impact] = row
        rates[impact] = [
            draw(st.floats(min_value=0, max_value=100)) if action == "auto" else 0.0
            for action in row
        ]
    return build_grid(edges=edges, cells=cells, sample_rates=rates)


# --------------------------------------------------------------------------- round trips


def test_the_default_grid_round_trips():
    rebuilt, meta = round_trip(DEFAULT_GRID)
    assert rebuilt.as_dict() == DEFAULT_GRID.as_dict()
    assert meta == {"critical_auto_override": False, "override_reason": ""}


@given(grid=grids())
def test_any_valid_grid_round_trips(grid):
    rebuilt, _ = round_trip(grid)
    assert rebuilt.as_dict() == grid.as_dict()


def test_the_critical_override_round_trips():
    reason = 'Fraud team signed off <FIN-42> & "agreed"\nsecond line, ünïcode'
    grid = build_grid(
        edges=[0.5, 0.99],
        cells={
            "low": ["review", "auto", "auto"],
            "medium": ["review", "review", "auto"],
            "high": ["four_eyes", "review", "review"],
            "critical": ["block", "four_eyes", "auto"],
        },
        sample_rates={
            "low": [0, 5, 1],
            "medium": [0, 0, 2],
            "high": [0] * 3,
            "critical": [0, 0, 50],
        },
        allow_critical_auto=True,
        override_reason=reason,
    )
    rebuilt, meta = round_trip(grid, critical_auto_override=True, override_reason=reason)
    assert rebuilt.as_dict() == grid.as_dict()
    assert meta == {"critical_auto_override": True, "override_reason": reason}


@given(order=st.permutations(range(16)))
def test_rules_in_any_order_and_with_extra_whitespace_are_read(order):
    root = parse(grid_to_dmn(DEFAULT_GRID, name="Gate"))
    table = table_of(root)
    rules = rules_of(root)
    for rule in rules:
        table.remove(rule)
        for kind, count in (("inputEntry", 2), ("outputEntry", 2)):
            for index in range(count):
                text = entry_text(rule, kind, index)
                text.text = f"\n   {text.text}  \t\n"
    table.extend(rules[index] for index in order)
    data, _ = grid_from_dmn(serialize(root))
    assert build_grid(**data).as_dict() == DEFAULT_GRID.as_dict()


def test_ranges_with_a_reversed_bracket_open_end_are_read():
    text = grid_to_dmn(DEFAULT_GRID, name="Gate")
    rewritten = re.sub(r"\)</text>", "[</text>", text)
    assert "<text>[0.5..0.8[</text>" in rewritten
    assert "<text>[0.95..1]</text>" in rewritten
    data, _ = grid_from_dmn(rewritten)
    assert build_grid(**data).as_dict() == DEFAULT_GRID.as_dict()


# --------------------------------------------------------------------------- structure


def test_the_document_is_a_dmn_13_unique_decision_table():
    text = grid_to_dmn(DEFAULT_GRID, name="Default gate", decision_id="gate_1")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    root = parse(text)
    assert root.tag == f"{{{DMN_NS}}}definitions"
    assert root.get("id") and root.get("name") == "Default gate" and root.get("namespace")
    decision = root.find("dmn:decision", NS)
    assert decision is not None and decision.get("id") == "gate_1"
    table = table_of(root)
    assert table.get("hitPolicy") == "UNIQUE"

    inputs = table.findall("dmn:input", NS)
    assert [i.findtext("dmn:inputExpression/dmn:text", namespaces=NS) for i in inputs] == [
        "confidence",
        "impact",
    ]
    assert [i.findall("dmn:inputExpression", NS)[0].get("typeRef") for i in inputs] == [
        "number",
        "string",
    ]
    assert inputs[1].findtext("dmn:inputValues/dmn:text", namespaces=NS) == (
        '"low","medium","high","critical"'
    )
    outputs = table.findall("dmn:output", NS)
    assert [(o.get("name"), o.get("typeRef")) for o in outputs] == [
        ("action", "string"),
        ("sample_rate", "number"),
    ]
    assert outputs[0].findtext("dmn:outputValues/dmn:text", namespaces=NS) == (
        '"auto","review","four_eyes","block"'
    )

    rules = rules_of(root)
    assert len(rules) == len(IMPACTS) * DEFAULT_GRID.bands == 16
    ranges = [entry_text(rule, "inputEntry", 0).text for rule in rules[:4]]
    assert ranges == ["[0..0.5)", "[0.5..0.8)", "[0.8..0.95)", "[0.95..1]"]
    assert rules[3].findtext("dmn:description", namespaces=NS) == "low impact, confidence [0.95..1]"
    assert [entry_text(rules[3], "inputEntry", 1).text] == ['"low"']
    assert entry_text(rules[3], "outputEntry", 0).text == '"auto"'
    assert entry_text(rules[3], "outputEntry", 1).text == "5"
    assert len({rule.get("id") for rule in rules}) == 16

    extensions = decision.find("dmn:extensionElements", NS)
    assert extensions is not None
    assert extensions.findtext("arbiter:criticalAutoOverride", namespaces=NS) == "false"


def test_numbers_are_written_without_exponents():
    grid = build_grid(
        edges=[0.00001, 0.5],
        cells={impact: ["review", "review", "review"] for impact in IMPACTS},
    )
    text = grid_to_dmn(grid, name="Gate")
    assert "<text>[0..0.00001)</text>" in text
    assert "e-" not in text
    assert round_trip(grid)[0].as_dict() == grid.as_dict()


def test_an_invalid_decision_id_is_refused():
    with pytest.raises(ValueError, match="NCName"):
        grid_to_dmn(DEFAULT_GRID, name="Gate", decision_id="1 gate")


# --------------------------------------------------------------------------- errors


def exported() -> ET.Element:
    return parse(grid_to_dmn(DEFAULT_GRID, name="Gate"))


def without_table() -> str:
    root = exported()
    decision = root.findall("dmn:decision", NS)[0]
    decision.remove(table_of(root))
    return serialize(root)


def without_input(expression: str) -> str:
    root = exported()
    table = table_of(root)
    for column in table.findall("dmn:input", NS):
        if column.findtext("dmn:inputExpression/dmn:text", namespaces=NS) == expression:
            table.remove(column)
    return serialize(root)


def without_output(name: str) -> str:
    root = exported()
    table = table_of(root)
    for column in table.findall("dmn:output", NS):
        if column.get("name") == name:
            table.remove(column)
    return serialize(root)


def with_entry(rule_number: int, kind: str, index: int, value: str) -> str:
    root = exported()
    entry_text(rules_of(root)[rule_number - 1], kind, index).text = value
    return serialize(root)


def with_high_edge_moved() -> str:
    """high impact splits at 0.85 where the others split at 0.8."""
    root = exported()
    rules = rules_of(root)
    entry_text(rules[9], "inputEntry", 0).text = "[0.5..0.85)"
    entry_text(rules[10], "inputEntry", 0).text = "[0.85..0.95)"
    return serialize(root)


def without_rule(rule_number: int) -> str:
    root = exported()
    table_of(root).remove(rules_of(root)[rule_number - 1])
    return serialize(root)


def with_rule_duplicated(rule_number: int) -> str:
    root = exported()
    rule = rules_of(root)[rule_number - 1]
    table_of(root).append(parse(serialize(rule)))
    return serialize(root)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param("this is not XML", "not well-formed XML", id="not-xml"),
        pytest.param("<dmn><rule/></dmn>", "root element is <dmn>; expected DMN 1.3", id="root"),
        pytest.param(
            grid_to_dmn(DEFAULT_GRID, name="Gate").replace(
                DMN_NS, "https://www.omg.org/spec/DMN/20180521/MODEL/"
            ),
            "root element is in namespace 'https://www.omg.org/spec/DMN/20180521/MODEL/'",
            id="namespace",
        ),
        pytest.param(without_table(), "no <decision> with a <decisionTable>", id="no-table"),
        pytest.param(
            without_input("confidence"), "no input column for confidence", id="no-confidence"
        ),
        pytest.param(without_input("impact"), "no input column for impact", id="no-impact"),
        pytest.param(without_output("action"), "no output column for action", id="no-action"),
        pytest.param(
            without_output("sample_rate"), "no output column for sample_rate", id="no-rate"
        ),
        pytest.param(
            with_entry(3, "inputEntry", 0, ">= 0.8 and < 0.95"),
            "rule 3 (id review_gate_rule_low_3): confidence entry '>= 0.8 and < 0.95' is not "
            "a FEEL range",
            id="range-unreadable",
        ),
        pytest.param(
            with_entry(2, "inputEntry", 0, "(0.5..0.8)"),
            "rule 2 (id review_gate_rule_low_2): confidence range '(0.5..0.8)' excludes its "
            "lower edge",
            id="range-open-start",
        ),
        pytest.param(
            with_entry(2, "inputEntry", 0, "[0.5..0.8]"),
            "rule 2 (id review_gate_rule_low_2): confidence range '[0.5..0.8]' includes its "
            "upper edge",
            id="range-closed-end",
        ),
        pytest.param(
            with_entry(4, "inputEntry", 0, "[0.95..1)"),
            "rule 4 (id review_gate_rule_low_4): the last band must include 1",
            id="range-last-open",
        ),
        pytest.param(
            with_entry(6, "inputEntry", 1, "medium"),
            "rule 6 (id review_gate_rule_medium_2): impact entry 'medium' is not one quoted impact",
            id="impact-unquoted",
        ),
        pytest.param(
            with_entry(6, "inputEntry", 1, '"severe"'),
            "rule 6 (id review_gate_rule_medium_2): impact entry '\"severe\"'",
            id="impact-unknown",
        ),
        pytest.param(
            with_entry(7, "outputEntry", 0, '"approve"'),
            "rule 7 (id review_gate_rule_medium_3): action '\"approve\"' is not one quoted action",
            id="action-unknown",
        ),
        pytest.param(
            with_entry(8, "outputEntry", 1, "ten"),
            "rule 8 (id review_gate_rule_medium_4): sample rate 'ten' is not a number",
            id="rate-unreadable",
        ),
        pytest.param(
            with_high_edge_moved(),
            "bands do not line up across impacts: rule 10 (id review_gate_rule_high_2) covers "
            "high impact, confidence [0.5..0.85), but other rules split confidence at 0.8",
            id="edges-misaligned",
        ),
        pytest.param(
            without_rule(6),
            "missing cell: no rule covers medium impact, confidence [0.5..0.8)",
            id="cell-missing",
        ),
        pytest.param(
            with_rule_duplicated(14),
            "rule 14 (id review_gate_rule_critical_2) and rule 17 (id review_gate_rule_critical_2) "
            "both cover critical impact, confidence [0.5..0.8): duplicated cell",
            id="cell-duplicated",
        ),
    ],
)
def test_an_unreadable_document_is_refused_with_an_actionable_message(document, message):
    with pytest.raises(DmnError) as caught:
        grid_from_dmn(document)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert caught.value.problems


def test_every_problem_is_reported_at_once():
    root = exported()
    rules = rules_of(root)
    entry_text(rules[0], "inputEntry", 0).text = "low"
    entry_text(rules[5], "inputEntry", 1).text = "medium"
    with pytest.raises(DmnError) as caught:
        grid_from_dmn(serialize(root))
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "rule 1 (id review_gate_rule_low_1)",
        "rule 6 (id review_gate_rule_medium_2)",
    ]


def test_a_critical_auto_cell_needs_the_override_in_the_document():
    with pytest.raises(DmnError, match="critical cell is set to auto"):
        grid_from_dmn(with_entry(16, "outputEntry", 0, '"auto"'))


def test_another_hit_policy_is_refused():
    root = exported()
    table_of(root).set("hitPolicy", "FIRST")
    with pytest.raises(DmnError, match="hit policy is FIRST; expected UNIQUE"):
        grid_from_dmn(serialize(root))


# --------------------------------------------------------------------------- XML bombs

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/">&lol3;</definitions>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!doctype definitions [<!entity xxe SYSTEM "file:///etc/passwd">]>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/">&xxe;</definitions>
"""


@pytest.mark.parametrize("document", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["bomb", "xxe"])
def test_doctype_and_entity_declarations_are_refused(document):
    with pytest.raises(DmnError, match="DOCTYPE or ENTITY declaration"):
        grid_from_dmn(document)


def test_a_document_over_one_mib_is_refused():
    text = grid_to_dmn(DEFAULT_GRID, name="Gate")
    padded = text.replace("<decision ", "<!--" + "x" * MAX_DOCUMENT_BYTES + "--><decision ", 1)
    with pytest.raises(DmnError, match="larger than 1 MiB"):
        grid_from_dmn(padded)
