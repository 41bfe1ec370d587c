"""The three demo workflow definitions shipped in orchestration/workflows/."""

import json
from pathlib import Path
from typing import Any

import pytest

import orchestration
import orchestration.handlers  # registers the demo handlers
from orchestration.definition import parse
from orchestration.workers import registered

WORKFLOWS = Path(orchestration.__file__).resolve().parent / "workflows"
SLUGS = ("content-moderation", "invoice-approval", "kyc-screening")


def load(slug: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / f"{slug}.json").read_text(encoding="utf-8"))


def test_the_three_demo_workflows_are_shipped():
    assert tuple(sorted(p.stem for p in WORKFLOWS.glob("*.json"))) == SLUGS


@pytest.mark.parametrize("slug", SLUGS)
def test_demo_workflow_parses_under_its_file_name(slug):
    definition = parse(load(slug))
    assert definition.slug == slug
    assert definition.title
    assert definition.description


@pytest.mark.parametrize("slug", SLUGS)
def test_every_handler_a_demo_workflow_names_is_registered(slug):
    named = {
        step[key]
        for step in load(slug)["steps"]
        for key in ("handler", "compensate")
        if key in step
    }
    assert named
    assert named <= set(registered())


def test_the_demo_workflows_use_every_step_kind():
    kinds = {step["kind"] for slug in SLUGS for step in load(slug)["steps"]}
    assert kinds == {"task", "review", "wait"}


def test_invoice_approval_posts_only_after_a_person_approves():
    definition = parse(load("invoice-approval"))
    assert definition.start == "extract"
    assert definition.target("validate", "flagged") == "approval"
    assert definition.target("approval", "approve") == "post"
    assert definition.target("approval", "reject") == "end:rejected"
    assert definition.step("approval").routing == {"queue": "invoices", "skills": ["invoices"]}
    assert definition.step("post").compensate == "invoice.reverse_posting"
    assert definition.step("extract").retry.max_attempts == 5


def test_kyc_screening_sends_only_hits_to_review_and_then_waits_for_documents():
    definition = parse(load("kyc-screening"))
    assert definition.target("screen", "clear") == "open_account"
    assert definition.target("screen", "hit") == "review"
    assert definition.target("review", "approve") == "documents"
    documents = definition.step("documents")
    assert (documents.signal, documents.wait_seconds) == ("documents_received", 259200)
    assert definition.target("documents", "timeout") == "end:rejected"
    assert definition.step("open_account").compensate == "kyc.close_account"


def test_content_moderation_applies_the_decision_after_review():
    definition = parse(load("content-moderation"))
    assert list(definition.steps) == ["classify", "review", "apply"]
    assert definition.step("review").sla == 3600
    assert definition.step("review").routing == {"skills": ["moderation"]}
    assert definition.target("apply", "ok") == "end:approved"
    assert definition.step("apply").compensate == "moderation.revert"
