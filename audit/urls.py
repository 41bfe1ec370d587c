from django.urls import path

from audit import views

app_name = "audit"

urlpatterns = [
    path("", views.search, name="search"),
    path("cases/<str:case_id>/", views.case_timeline, name="case_timeline"),
    path("cases/<str:case_id>/evidence.json", views.evidence_json, name="evidence_json"),
    path("cases/<str:case_id>/evidence/", views.evidence_html, name="evidence_html"),
]
