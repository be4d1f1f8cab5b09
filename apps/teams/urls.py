from django.urls import path

from . import views

urlpatterns = [path("<int:team_id>/switch/", views.switch, name="team_switch")]
