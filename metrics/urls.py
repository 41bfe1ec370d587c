"""The dashboard's other tabs (flow metrics, SLOs, planning), under /dashboard/."""

from django.urls import include, path

app_name = "metrics"

urlpatterns = [
    path("flow/", include("metrics.flow_urls")),
    path("slos/", include("metrics.slo_urls")),
    path("planning/", include("metrics.planning_urls")),
]
