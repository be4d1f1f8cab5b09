from django.urls import path

from . import api

urlpatterns = [
    path("runs/<uuid:run_id>/feedback/", api.run_feedback, name="api_run_feedback"),
]
