from django.contrib import admin
from django.urls import include, path

from rlmweb.web.home import home

urlpatterns = [
    path("", home, name="home"),
    path("accounts/", include("apps.accounts.urls")),
    path("teams/", include("apps.teams.urls")),
    path("documents/", include("apps.documents.urls")),
    path("runs/", include("apps.runs.urls")),
    path("helpers/", include("apps.helpers.urls")),
    path("api/documents/", include("apps.documents.api_urls")),
    path("api/runs/", include("apps.runs.api_urls")),
    path("review/", include("apps.review.urls")),
    path("evals/", include("apps.evals.urls")),
    path("api/review/", include("apps.review.api_urls")),
    path("api/teams/", include("apps.teams.api_urls")),
    path("s/", include("apps.sharing.urls")),
    path("api/sharing/", include("apps.sharing.api_urls")),
    path("api/comments/", include("apps.comments.urls")),
    path("admin/", admin.site.urls),
]
