from django.urls import path

from . import views

urlpatterns = [
    path("", views.helper_list, name="helper_list"),
    path("new/", views.helper_edit, name="helper_new"),
    path("<int:helper_id>/", views.helper_edit, name="helper_edit"),
    path("<int:helper_id>/deactivate/", views.helper_deactivate, name="helper_deactivate"),
    path("test/", views.helper_test, name="helper_test"),
]
