from django.urls import path

from orchestration import views

app_name = "settings"

urlpatterns = [
    path("", views.settings_index, name="index"),
    path("thresholds/", views.thresholds, name="thresholds"),
    path("thresholds/preview/", views.thresholds_preview, name="thresholds_preview"),
    path("thresholds/diff/", views.thresholds_diff, name="thresholds_diff"),
    path("thresholds/export.dmn", views.thresholds_export, name="thresholds_export"),
    path("thresholds/import/", views.thresholds_import, name="thresholds_import"),
    path("thresholds/reviewed-cases.jsonl", views.reviewed_cases_export, name="reviewed_cases"),
]
