"""Reads of cases and step runs for views, the API, the timeline and evidence packs."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit.history import history_entries
from audit.registry import TimelineEntry
from orchestration.models import Case, DeadLetter, StepRun, StepStatus
from orchestration.thresholds import ACTIONS, IMPACTS, Grid


def _case_or_none(case_id: str) -> Case | None:
    try:
        uuid.UUID(str(case_id))
    except ValueError:
        return None
    return Case.objects.select_related("workflow").filter(pk=case_id).first()


def step_timeline(case_id: str) -> Iterable[TimelineEntry]:
    case = _case_or_none(case_id)
    if case is None:
        return []
    entries = []
    for run in case.step_runs.all():
        what = f"{run.step_id}{' (compensation)' if run.is_compensation else ''}"
        entries.append(
            TimelineEntry(
                at=run.created_at,
                kind="step",
                title=f"step {what}: {run.status}",
                actor=f"worker:{run.handler}" if run.handler else "",
                detail={
                    "kind": run.kind,
                    "attempts": run.attempt,
                    "outcome": run.outcome,
                    "last_error": run.last_error,
                    "finished_at": run.finished_at.isoformat() if run.finished_at else "",
                },
                order=run.pk,
            )
        )
    return entries


def case_history_timeline(case_id: str) -> Iterable[TimelineEntry]:
    case = _case_or_none(case_id)
    if case is None:
        return []
    return history_entries(Case.history.filter(id=case.pk))


def case_evidence(case_id: str) -> dict[str, Any] | None:
    case = _case_or_none(case_id)
    if case is None:
        return None
    return {
        "id": str(case.pk),
        "correlation_id": str(case.correlation_id),
        "workflow": case.workflow.slug,
        "workflow_version": case.workflow.version,
        "workflow_definition": case.workflow.definition,
        "external_ref": case.external_ref,
        "status": case.status,
        "outcome": case.outcome,
        "payload": case.payload,
        "proposed": case.proposed,
        "sources": case.sources,
        "confidence": case.confidence,
        "impact": case.impact,
        "region": case.region,
        "skills": case.skills,
        "priority": case.priority,
        "created_at": case.created_at.isoformat(),
        "finished_at": case.finished_at.isoformat() if case.finished_at else None,
    }


def steps_evidence(case_id: str) -> list[dict[str, Any]] | None:
    case = _case_or_none(case_id)
    if case is None:
        return None
    letters: dict[int, list[dict[str, Any]]] = {}
    for letter in DeadLetter.objects.filter(step_run__case=case):
        letters.setdefault(letter.step_run_id, []).append(
            {
                "id": letter.pk,
                "error_type": letter.error_type,
                "message": letter.message,
                "attempts": letter.attempts,
                "created_at": letter.created_at.isoformat(),
                "replayed_at": letter.replayed_at.isoformat() if letter.replayed_at else None,
            }
        )
    return [_run_dict(run, letters.get(run.pk, [])) for run in case.step_runs.all()]


def _run_dict(run: StepRun, dead_letters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": run.pk,
        "step": run.step_id,
        "kind": run.kind,
        "handler": run.handler,
        "compensation_of": run.compensates_id,
        "status": run.status,
        "attempts": run.attempt,
        "outcome": run.outcome,
        "output": run.output,
        "last_error": run.last_error,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "dead_letters": dead_letters,
    }


# Threshold grids ------------------------------------------------------------------------


def gate_decisions_since(
    workflow_slug: str, since: dt.datetime, step_id: str = ""
) -> list[dict[str, Any]]:
    """The gate records of review steps of this workflow since `since` (what the preview
    replays under an edited grid)."""
    runs = StepRun.objects.filter(
        kind="review",
        gate__isnull=False,
        created_at__gte=since,
        case__workflow__slug=workflow_slug,
    )
    if step_id:
        runs = runs.filter(step_id=step_id)
    return [gate for gate in runs.values_list("gate", flat=True) if isinstance(gate, dict)]


@dataclass(frozen=True)
class Preview:
    total: int
    before: dict[str, int]
    after: dict[str, int]
    per_cell: list[tuple[str, str, int]]  # (cell, action under the edited grid, count)
    moved: int


def gate_preview(decisions: list[dict[str, Any]], grid: Grid) -> Preview:
    """How recorded decisions would have split under `grid`."""
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    cells: Counter[tuple[str, str]] = Counter()
    moved = 0
    for gate in decisions:
        cell = grid.decide(gate.get("confidence"), gate.get("impact", "medium"))
        before[gate.get("action", "?")] += 1
        after[cell.action] += 1
        cells[(cell.label, cell.action)] += 1
        if cell.action != gate.get("action"):
            moved += 1
    order = {a: i for i, a in enumerate(ACTIONS)}
    return Preview(
        total=len(decisions),
        before={a: before.get(a, 0) for a in ACTIONS},
        after={a: after.get(a, 0) for a in ACTIONS},
        per_cell=sorted(
            ((c, a, n) for (c, a), n in cells.items()), key=lambda r: (r[0], order[r[1]])
        ),
        moved=moved,
    )


def wilson_interval(failures: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sensible at 0 and small n)."""
    if total == 0:
        return (0.0, 1.0)
    p = failures / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class CalibrationRow:
    cell: str
    policy_version: int
    checked: int
    disagreed: int
    rate: float
    low: float
    high: float
    hint: str


def calibration_report(workflow_slug: str, *, target_error: float = 0.02) -> list[CalibrationRow]:
    """Per cell: QA-checked automatic approvals, disagreements, the error rate and its
    95 % Wilson interval, and a plain-language hint."""
    from orchestration.models import QaFinding

    counts: dict[tuple[str, int], list[int]] = {}
    findings = QaFinding.objects.filter(step_run__case__workflow__slug=workflow_slug)
    for cell, version, agrees in findings.values_list("cell", "policy_version", "agrees"):
        row = counts.setdefault((cell, version), [0, 0])
        row[0] += 1
        row[1] += 0 if agrees else 1
    rows = []
    for (cell, version), (checked, disagreed) in sorted(counts.items()):
        low, high = wilson_interval(disagreed, checked)
        if checked < 30:
            hint = f"Only {checked} checked: too few to judge this cell yet."
        elif low > target_error:
            hint = (
                f"Too lenient: even the optimistic end of the interval ({low:.1%}) is above the "
                f"{target_error:.0%} target. Consider sending this cell to review."
            )
        elif high < target_error / 2:
            hint = (
                f"Reviewers almost never disagree (at most {high:.1%}): the sample rate could be "
                "lowered, or a neighbouring review cell made automatic."
            )
        else:
            hint = f"Within the {target_error:.0%} target."
        rows.append(
            CalibrationRow(cell, version, checked, disagreed, disagreed / checked, low, high, hint)
        )
    return rows


def reviewed_cases_jsonl(workflow_slug: str) -> Iterable[str]:
    """One JSON line per decided review step: what the machine proposed, the final
    values, the verdict, the cell and policy version (for retraining the models)."""
    runs = (
        StepRun.objects.filter(
            kind="review", status=StepStatus.SUCCEEDED, case__workflow__slug=workflow_slug
        )
        .select_related("case")
        .order_by("id")
    )
    for run in runs.iterator(chunk_size=500):
        gate = run.gate or {}
        output = run.output or {}
        yield (
            json.dumps(
                {
                    "case_id": str(run.case_id),
                    "step": run.step_id,
                    "payload": run.case.payload,
                    "proposal": output.get("proposal", run.case.proposed),
                    "final": run.case.proposed,
                    "edits": output.get("edits", []),
                    "verdict": run.outcome,
                    "decided_by": output.get("decided_by", "people"),
                    "confidence": gate.get("confidence"),
                    "impact": gate.get("impact"),
                    "cell": gate.get("cell"),
                    "policy_version": gate.get("policy_version"),
                },
                sort_keys=True,
                default=str,
            )
            + "\n"
        )


def grid_diff(a: Grid, b: Grid) -> dict[str, Any]:
    """What changed from grid `a` to grid `b`: edges, and cells whose action or rate differ.

    Cells are compared by band index when both grids have the same number of bands."""
    changes: list[dict[str, Any]] = []
    if a.bands == b.bands:
        for impact in IMPACTS:
            for band in range(a.bands):
                old = (a.cells[impact][band], a.sample_rates[impact][band])
                new = (b.cells[impact][band], b.sample_rates[impact][band])
                if old != new:
                    changes.append(
                        {
                            "impact": impact,
                            "band": f"{a.band_label(band)} -> {b.band_label(band)}",
                            "from": f"{old[0]} ({old[1]:g} %)" if old[0] == "auto" else old[0],
                            "to": f"{new[0]} ({new[1]:g} %)" if new[0] == "auto" else new[0],
                        }
                    )
    return {
        "edges": (list(a.edges), list(b.edges)),
        "same_bands": a.bands == b.bands,
        "cells": changes,
    }
