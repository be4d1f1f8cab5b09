from django.urls import path

from . import views

urlpatterns = [
    path("runs/<uuid:run_id>/", views.share_manage, name="share_manage"),
    path("runs/<uuid:run_id>/new/", views.share_create, name="share_create"),
    path("links/<uuid:link_id>/revoke/", views.share_revoke, name="share_revoke"),
    path("<str:token>/", views.share_page, name="share_page"),
    path("<str:token>/events.json", views.share_events, name="share_events"),
    path("<str:token>/trajectory.json", views.share_trajectory, name="share_trajectory"),
    path("<str:token>/documents/<int:position>/text", views.share_document_text, name="share_document_text"),
]
