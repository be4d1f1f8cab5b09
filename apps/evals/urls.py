from django.urls import path

from . import views

urlpatterns = [
    path("", views.evaluation_list, name="evaluation_list"),
    path("new/", views.evaluation_new, name="evaluation_new"),
    path("compare/", views.evaluation_compare, name="evaluation_compare"),
    path("shared/<str:token>/", views.evaluation_shared, name="evaluation_shared"),
    path("<uuid:evaluation_id>/", views.evaluation_detail, name="evaluation_detail"),
    path("<uuid:evaluation_id>/progress.json", views.evaluation_progress, name="evaluation_progress"),
    path("<uuid:evaluation_id>/export.<str:fmt>", views.evaluation_export, name="evaluation_export"),
    path("<uuid:evaluation_id>/cancel/", views.evaluation_cancel, name="evaluation_cancel"),
    path("<uuid:evaluation_id>/resume/", views.evaluation_resume, name="evaluation_resume"),
    path("<uuid:evaluation_id>/share/", views.evaluation_share, name="evaluation_share"),
    path("<uuid:evaluation_id>/share/<int:link_id>/revoke/", views.evaluation_share_revoke,
         name="evaluation_share_revoke"),
]
