import copy
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from orchestration.definition import InvalidDefinition, parse
from orchestration.models import Workflow
from tests.orchestration.conftest import three_tasks, with_wait_and_review


def problems_of(document):
    with pytest.raises(InvalidDefinition) as excinfo:
        parse(document)
    return excinfo.value.problems


def test_the_test_workflows_are_valid():
    assert parse(three_tasks()).start == "collect"
    assert parse(with_wait_and_review()).step("docs").outcomes() == ("signal", "timeout")


def test_an_unknown_handler_is_named():
    doc = three_tasks()
    doc["steps"][1]["handler"] = "test.teleport"
    assert problems_of(doc) == [
        "definition.steps[1] ('reserve').handler: unknown handler 'test.teleport' (not registered)"
    ]


def test_an_unreachable_step_is_named():
    doc = three_tasks()
    doc["steps"][0]["next"] = {"ok": "finish"}
    assert problems_of(doc) == ["step 'reserve' is unreachable from the start step 'collect'"]


def test_a_loop_of_tasks_with_no_wait_is_refused():
    doc = three_tasks()
    doc["steps"][2]["next"] = {"ok": "collect"}
    assert problems_of(doc) == [
        "steps collect -> reserve -> finish -> collect form a loop with no wait or review"
    ]


def test_a_loop_through_a_review_is_allowed():
    doc = with_wait_and_review()
    doc["steps"][2]["next"] = {"approve": "end:approved", "reject": "route"}
    assert parse(doc).step("check").next["reject"] == "route"


def test_an_outcome_with_no_transition_is_named():
    doc = with_wait_and_review()
    doc["steps"][0]["next"] = {"small": "end:approved"}
    assert "step 'route': outcome 'large' has no transition" in problems_of(doc)


def test_a_transition_for_an_outcome_the_step_never_produces_is_named():
    doc = three_tasks()
    doc["steps"][0]["next"]["maybe"] = "finish"
    assert any("never produces outcome 'maybe'" in p for p in problems_of(doc))


def test_schema_errors_name_the_path():
    doc = three_tasks()
    doc["steps"][1]["retry"] = {"max_attempts": 0}
    doc["steps"][2]["kind"] = "teleport"
    found = problems_of(doc)
    assert any(p.startswith("definition.steps[1].retry.max_attempts:") for p in found)
    assert any(p.startswith("definition.steps[2].kind:") for p in found)


def test_kinds_reject_fields_of_other_kinds():
    doc = with_wait_and_review()
    doc["steps"][1]["handler"] = "test.collect"
    assert any(p.startswith("definition.steps[1]") for p in problems_of(doc))


def test_unknown_ends_and_steps_are_named():
    doc = three_tasks()
    doc["steps"][2]["next"] = {"ok": "end:maybe"}
    doc["steps"][1]["next"] = {"ok": "nowhere"}
    found = problems_of(doc)
    assert "step 'reserve'.next.ok: unknown step 'nowhere'" in found
    assert any("unknown end 'end:maybe'" in p for p in found)


@pytest.mark.django_db
def test_load_workflow_publishes_and_refuses_bad_files_saving_nothing(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(three_tasks()))
    call_command("load_workflow", str(good))
    assert "loaded three-tasks v1 (published)" in capsys.readouterr().out
    call_command("load_workflow", str(good))
    assert "unchanged three-tasks v1" in capsys.readouterr().out

    bad_doc = copy.deepcopy(three_tasks())
    bad_doc["steps"][1]["handler"] = "test.teleport"
    bad_doc["title"] = "changed"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bad_doc))
    with pytest.raises(CommandError, match=r"unknown handler 'test\.teleport'"):
        call_command("load_workflow", str(bad))
    not_json = tmp_path / "broken.json"
    not_json.write_text("{")
    with pytest.raises(CommandError, match="not JSON"):
        call_command("load_workflow", str(not_json))
    assert list(Workflow.objects.values_list("slug", "version", "published")) == [
        ("three-tasks", 1, True)
    ]


@pytest.mark.django_db
def test_a_published_version_is_immutable_and_a_change_makes_a_new_version():
    from audit.context import Actor
    from orchestration import services

    first, _ = services.workflow_load(document=three_tasks(), actor=Actor.system("t"))
    with pytest.raises(services.Conflict):
        services.workflow_publish(workflow=first, actor=Actor.system("t"))
    second, created = services.workflow_load(
        document=three_tasks() | {"title": "v2"}, actor=Actor.system("t")
    )
    assert created and second.version == 2
    first.refresh_from_db()
    assert first.definition == three_tasks()


@pytest.mark.django_db
def test_each_submission_starts_on_the_version_published_newest_at_that_moment():
    from audit.context import Actor
    from orchestration import services

    system = Actor.system("t")
    services.workflow_load(document=three_tasks(), actor=system)
    first = services.case_submit(workflow="three-tasks", payload={}, actor=system)
    services.workflow_load(document=three_tasks() | {"title": "v2"}, actor=system)
    second = services.case_submit(workflow="three-tasks", payload={}, actor=system)
    assert (first.workflow.version, second.workflow.version) == (1, 2)


@pytest.mark.django_db
def test_the_admin_refuses_an_invalid_draft_naming_the_problem(admin_client):
    doc = three_tasks()
    doc["steps"][1]["handler"] = "test.teleport"
    response = admin_client.post(
        "/admin/orchestration/workflow/add/",
        {
            "slug": "three-tasks",
            "version": 1,
            "title": "Three tasks",
            "definition": json.dumps(doc),
            "change_reason": "new draft",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["definition"]
    assert any("unknown handler 'test.teleport'" in e for e in errors)
    assert not Workflow.objects.exists()


@pytest.mark.django_db
def test_an_admin_drafts_and_publishes_a_workflow(admin_client):
    response = admin_client.post(
        "/admin/orchestration/workflow/add/",
        {
            "slug": "three-tasks",
            "version": 1,
            "title": "Three tasks",
            "definition": json.dumps(three_tasks()),
            "change_reason": "first draft",
        },
    )
    assert response.status_code == 302
    draft = Workflow.objects.get()
    assert not draft.published
    admin_client.post(
        "/admin/orchestration/workflow/",
        {"action": "publish", "_selected_action": [draft.pk]},
    )
    draft.refresh_from_db()
    assert draft.published
    page = admin_client.get(f"/admin/orchestration/workflow/{draft.pk}/change/")
    assert b'name="definition"' not in page.content  # read-only once published


@pytest.mark.django_db
def test_auditors_can_neither_publish_nor_delete_workflows_in_the_admin(client, audrey):
    draft, _ = __import__("orchestration.services", fromlist=["x"]).workflow_load(
        document=three_tasks(), actor=audrey, publish=False
    )
    client.force_login(audrey)
    page = client.get("/admin/orchestration/workflow/")
    assert page.status_code == 200
    assert b'value="publish"' not in page.content
    client.post(
        "/admin/orchestration/workflow/", {"action": "publish", "_selected_action": [draft.pk]}
    )
    assert client.get(f"/admin/orchestration/workflow/{draft.pk}/delete/").status_code == 403
    draft.refresh_from_db()
    assert not draft.published
