"""URLs of the SLO tab."""

from django.urls import path

from metrics import slo_views

urlpatterns = [
    path("", slo_views.slos_page, name="slos"),
]
