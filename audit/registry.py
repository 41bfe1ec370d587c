"""Each app contributes to a case's timeline and evidence pack through this registry.

Audit knows no other app: orchestration registers step runs and gate decisions,
review registers decisions, each app its history, from their AppConfig.ready().
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TimelineEntry:
    at: dt.datetime
    kind: str  # "audit", "step", "decision", "history", ...
    title: str
    actor: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    # Ties at the same instant keep each source's own order.
    order: int = 0


TimelineSource = Callable[[str], Iterable[TimelineEntry]]
EvidenceSection = Callable[[str], Any]

_timeline_sources: dict[str, TimelineSource] = {}
_evidence_sections: dict[str, EvidenceSection] = {}


def register_timeline_source(name: str, source: TimelineSource) -> None:
    _timeline_sources[name] = source


def register_evidence_section(name: str, section: EvidenceSection) -> None:
    """`section(case_id)` returns JSON-ready data, or None when it knows nothing of the case."""
    _evidence_sections[name] = section


def timeline_for(case_id: str) -> list[TimelineEntry]:
    entries = [entry for source in _timeline_sources.values() for entry in source(case_id)]
    return sorted(entries, key=lambda e: (e.at, e.order))


def evidence_for(case_id: str) -> dict[str, Any]:
    sections = {}
    for name, section in _evidence_sections.items():
        data = section(case_id)
        if data is not None:
            sections[name] = data
    return sections
