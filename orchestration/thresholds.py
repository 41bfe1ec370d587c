"""The confidence x impact grid: pure functions, no database.

Band edges split [0, 1] into bands: with edges (0.50, 0.80, 0.95) the bands are
[0, 0.50), [0.50, 0.80), [0.80, 0.95) and [0.95, 1]. A confidence exactly on an edge
belongs to the band above it. Each (band, impact) cell holds one action, and auto
cells a QA sample rate in percent.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

IMPACTS = ("low", "medium", "high", "critical")
ACTIONS = ("auto", "review", "four_eyes", "block")


@dataclass(frozen=True)
class Grid:
    edges: tuple[float, ...]
    # impact -> one action per band (len(edges) + 1)
    cells: Mapping[str, tuple[str, ...]]
    # impact -> one sample rate (0..100) per band; only auto cells use theirs
    sample_rates: Mapping[str, tuple[float, ...]]

    @property
    def bands(self) -> int:
        return len(self.edges) + 1

    def band_of(self, confidence: float | None) -> int:
        """The band index of a confidence; a missing confidence counts as 0 (least sure)."""
        value = 0.0 if confidence is None else min(max(float(confidence), 0.0), 1.0)
        return bisect.bisect_right(self.edges, value)

    def band_label(self, band: int) -> str:
        low = 0.0 if band == 0 else self.edges[band - 1]
        high = 1.0 if band == len(self.edges) else self.edges[band]
        closing = "]" if band == len(self.edges) else ")"
        return f"[{low:g}, {high:g}{closing}"

    def decide(self, confidence: float | None, impact: str) -> GateCell:
        band = self.band_of(confidence)
        return GateCell(
            band=band,
            impact=impact,
            action=self.cells[impact][band],
            sample_rate=self.sample_rates[impact][band],
            label=f"{impact} x {self.band_label(band)}",
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "cells": {impact: list(self.cells[impact]) for impact in IMPACTS},
            "sample_rates": {impact: list(self.sample_rates[impact]) for impact in IMPACTS},
        }


@dataclass(frozen=True)
class GateCell:
    band: int
    impact: str
    action: str
    sample_rate: float
    label: str


class InvalidGrid(ValueError):
    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def build_grid(
    *,
    edges: Sequence[Any],
    cells: Mapping[str, Sequence[Any]],
    sample_rates: Mapping[str, Sequence[Any]] | None = None,
    allow_critical_auto: bool = False,
    override_reason: str = "",
) -> Grid:
    """Validate and build a grid, or raise InvalidGrid naming every problem."""
    problems: list[str] = []
    parsed_edges: list[float] = []
    for index, edge in enumerate(edges):
        try:
            value = float(edge)
        except (TypeError, ValueError):
            problems.append(f"edge {index + 1} ({edge!r}) is not a number")
            continue
        if not 0 < value < 1:
            problems.append(f"edge {index + 1} ({value:g}) must lie strictly between 0 and 1")
        parsed_edges.append(value)
    for index in range(1, len(parsed_edges)):
        if parsed_edges[index] <= parsed_edges[index - 1]:
            problems.append(
                f"edges must increase strictly: {parsed_edges[index]:g} follows "
                f"{parsed_edges[index - 1]:g}"
            )
    if not parsed_edges and not problems:
        problems.append("at least one band edge is needed")
    bands = len(parsed_edges) + 1
    rates = sample_rates or {}
    grid_cells: dict[str, tuple[str, ...]] = {}
    grid_rates: dict[str, tuple[float, ...]] = {}
    for impact in IMPACTS:
        row = list(cells.get(impact, []))
        if len(row) != bands:
            problems.append(f"impact {impact}: {len(row)} cells set, {bands} needed (one per band)")
            row = (row + ["review"] * bands)[:bands]
        for band, action in enumerate(row):
            if action not in ACTIONS:
                problems.append(
                    f"cell {impact} x band {band + 1}: unknown action {action!r}; "
                    f"use one of {', '.join(ACTIONS)}"
                )
        rate_row = list(rates.get(impact, [0.0] * bands))
        if len(rate_row) != bands:
            problems.append(f"impact {impact}: {len(rate_row)} sample rates, {bands} needed")
            rate_row = (rate_row + [0.0] * bands)[:bands]
        clean_rates = []
        for band, rate in enumerate(rate_row):
            try:
                value = float(rate)
            except (TypeError, ValueError):
                problems.append(
                    f"sample rate {impact} x band {band + 1} ({rate!r}) is not a number"
                )
                value = 0.0
            if not 0 <= value <= 100:
                problems.append(
                    f"sample rate {impact} x band {band + 1} ({value:g}) must be 0-100 %"
                )
            clean_rates.append(value if row[band] == "auto" else 0.0)
        grid_cells[impact] = tuple(str(a) for a in row)
        grid_rates[impact] = tuple(clean_rates)
    if "auto" in grid_cells.get("critical", ()):
        if not allow_critical_auto:
            problems.append(
                "a critical cell is set to auto: tick the critical override and give a reason, "
                "or choose review, four_eyes or block"
            )
        elif not override_reason.strip():
            problems.append("the critical override needs a reason")
    if problems:
        raise InvalidGrid(problems)
    return Grid(edges=tuple(parsed_edges), cells=grid_cells, sample_rates=grid_rates)


def is_sampled(case_id: str, policy_version: int, rate_percent: float) -> bool:
    """Deterministic QA sampling: the same case and policy version always get the same
    answer, so a re-run and an auditor agree."""
    if rate_percent <= 0:
        return False
    digest = hashlib.sha256(f"{case_id}:{policy_version}".encode()).digest()
    draw = int.from_bytes(digest[:8], "big") / 2**64
    return draw < rate_percent / 100


DEFAULT_GRID = build_grid(
    edges=(0.5, 0.8, 0.95),
    cells={
        "low": ("review", "review", "auto", "auto"),
        "medium": ("review", "review", "review", "auto"),
        "high": ("four_eyes", "review", "review", "review"),
        "critical": ("block", "four_eyes", "four_eyes", "four_eyes"),
    },
    sample_rates={
        "low": (0, 0, 10, 5),
        "medium": (0, 0, 0, 10),
        "high": (0, 0, 0, 0),
        "critical": (0, 0, 0, 0),
    },
)
