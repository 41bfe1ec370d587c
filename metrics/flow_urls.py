"""URLs of the flow tab: the page and its CSV."""

from django.urls import path

from metrics import flow_views

urlpatterns = [
    path("", flow_views.flow_page, name="flow"),
    path("export.csv", flow_views.flow_csv, name="flow_csv"),
]
