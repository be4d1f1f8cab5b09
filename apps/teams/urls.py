from django.urls import path

from . import views

urlpatterns = [
    path("", views.team_list, name="team_list"),
    path("join/<str:token>/", views.invite_accept, name="invite_accept"),
    path("invitations/<int:invitation_id>/accept/", views.invitation_accept, name="team_invitation_accept"),
    path("invitations/<int:invitation_id>/decline/", views.invitation_decline, name="team_invitation_decline"),
    path("<int:team_id>/", views.team_detail, name="team_detail"),
    path("<int:team_id>/switch/", views.switch, name="team_switch"),
    path("<int:team_id>/members/", views.member_add, name="team_member_add"),
    path("<int:team_id>/members/<int:membership_id>/role/", views.member_role, name="team_member_role"),
    path("<int:team_id>/members/<int:membership_id>/remove/", views.member_remove, name="team_member_remove"),
    path("<int:team_id>/invites/", views.invite_create, name="team_invite_create"),
    path("<int:team_id>/invites/<uuid:invite_id>/revoke/", views.invite_revoke, name="team_invite_revoke"),
    path("<int:team_id>/delete/", views.team_delete, name="team_delete"),
    path("<int:team_id>/spend/", views.team_spend, name="team_spend"),
    path("<int:team_id>/spend/cap/", views.team_cap, name="team_cap"),
]
