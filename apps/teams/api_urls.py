from django.urls import path

from . import api

urlpatterns = [
    path("", api.teams_collection, name="api_teams"),
    path("join/", api.invite_accept, name="api_team_join"),
    path("invitations/", api.invitations_collection, name="api_team_invitations"),
    path("invitations/<int:invitation_id>/", api.invitation_detail, name="api_team_invitation"),
    path("<int:team_id>/", api.team_detail, name="api_team_detail"),
    path("<int:team_id>/members/", api.members_collection, name="api_team_members"),
    path("<int:team_id>/members/<int:membership_id>/", api.member_detail, name="api_team_member"),
    path("<int:team_id>/invites/", api.invites_collection, name="api_team_invites"),
    path("<int:team_id>/invites/<uuid:invite_id>/", api.invite_detail, name="api_team_invite"),
    path("<int:team_id>/spend/", api.team_spend, name="api_team_spend"),
]
