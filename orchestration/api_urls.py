from django.urls import path

from orchestration import api

urlpatterns = [
    path("cases/", api.CaseListView.as_view(), name="api-cases"),
    path("cases/<uuid:case_id>/", api.CaseDetailView.as_view(), name="api-case"),
    path("cases/<uuid:case_id>/cancel/", api.CaseCancelView.as_view(), name="api-case-cancel"),
    path("cases/<uuid:case_id>/signals/", api.CaseSignalView.as_view(), name="api-case-signals"),
    path("webhooks/", api.WebhookListView.as_view(), name="api-webhooks"),
    path("webhooks/<int:webhook_id>/", api.WebhookDetailView.as_view(), name="api-webhook"),
]
