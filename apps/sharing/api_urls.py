from django.urls import path

from . import api

urlpatterns = [
    path("runs/<uuid:run_id>/", api.run_links, name="api_share_links"),
    path("links/<uuid:link_id>/", api.link_detail, name="api_share_link"),
]
