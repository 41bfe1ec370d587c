from django.urls import path

from review import views

app_name = "review"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("next/", views.next_item, name="next"),
    path("items/<int:item_id>/", views.item_page, name="item"),
    path("items/<int:item_id>/edit/", views.item_edit, name="edit"),
    path(
        "items/<int:item_id>/suggestions/<int:index>/",
        views.suggestion_apply,
        name="suggestion",
    ),
    path("items/<int:item_id>/decide/", views.decide, name="decide"),
    path("items/<int:item_id>/snooze/", views.snooze, name="snooze"),
    path("qa/", views.qa_list, name="qa_list"),
    path("qa/<int:item_id>/", views.qa_item, name="qa_item"),
]
