from django.urls import path

from . import api

urlpatterns = [
    path("runs/<uuid:run_id>/", api.run_comments, name="api_run_comments"),
    path("<uuid:comment_id>/", api.comment_detail, name="api_comment"),
]
