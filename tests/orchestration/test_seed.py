import pytest
from django.core.management import call_command

from orchestration.models import Case, Workflow

pytestmark = pytest.mark.django_db


def test_seed_demo_loads_the_three_workflows_and_demo_cases_once():
    call_command("seed_demo")
    assert set(Workflow.objects.filter(published=True).values_list("slug", flat=True)) == {
        "invoice-approval",
        "kyc-screening",
        "content-moderation",
    }
    cases = Case.objects.count()
    assert cases == 100
    assert set(Case.objects.values_list("workflow__slug", flat=True)) == {
        "invoice-approval",
        "kyc-screening",
        "content-moderation",
    }
    call_command("seed_demo")
    assert Case.objects.count() == cases
    assert Workflow.objects.count() == 3
