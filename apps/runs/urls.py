from django.contrib.auth.decorators import login_required
from django.urls import path

from . import api, views

urlpatterns = [
    path("", views.run_list, name="run_list"),
    path("new/", views.run_new, name="run_new"),
    path("compare/", views.run_compare, name="run_compare"),
    path("<uuid:run_id>/", views.run_detail, name="run_detail"),
    path("<uuid:run_id>/cancel/", views.run_cancel, name="run_cancel"),
    path("<uuid:run_id>/rerun/", views.run_rerun, name="run_rerun"),
    path("<uuid:run_id>/follow-up/", views.run_follow_up, name="run_follow_up"),
    path("<uuid:run_id>/conversation/", views.run_conversation, name="run_conversation"),
    path("<uuid:run_id>/delete/", views.run_delete, name="run_delete"),
    # The page's events are the API's (one view, one set of rules); signed out, a page sends to sign-in.
    path("<uuid:run_id>/events.json", login_required(api.run_events), name="run_events"),
    path("<uuid:run_id>/trajectory.json", views.run_trajectory, name="run_trajectory"),
]
