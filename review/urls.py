from django.urls import path

from review import views

app_name = "review"

urlpatterns = [
    path("qa/", views.qa_list, name="qa_list"),
    path("qa/<int:item_id>/", views.qa_item, name="qa_item"),
]
