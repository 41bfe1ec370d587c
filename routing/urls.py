from django.urls import path

from routing import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("queues/<slug:name>/", views.queue_items, name="queue"),
    path("queues/<slug:name>/reassign/", views.queue_reassign, name="queue_reassign"),
    path("queues/<slug:name>/move/", views.queue_move, name="queue_move"),
]
