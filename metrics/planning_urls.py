"""URLs of the planning tab."""

from django.urls import path

from metrics import planning_views

urlpatterns = [
    path("", planning_views.planning_page, name="planning"),
    path("what-if/", planning_views.planning_whatif, name="planning_whatif"),
]
