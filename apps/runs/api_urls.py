from django.urls import path

from . import api

urlpatterns = [
    path("", api.runs_collection, name="api_runs"),
    path("models/", api.models_list, name="api_run_models"),
    path("<uuid:run_id>/", api.run_detail, name="api_run_detail"),
    path("<uuid:run_id>/events/", api.run_events, name="api_run_events"),
    path("<uuid:run_id>/cancel/", api.run_cancel, name="api_run_cancel"),
    path("<uuid:run_id>/rerun/", api.run_rerun, name="api_run_rerun"),
]
