"""Reads of cases and step runs for views, the API, the timeline and evidence packs."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from audit.history import history_entries
from audit.registry import TimelineEntry
from orchestration.models import Case, DeadLetter, StepRun


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
