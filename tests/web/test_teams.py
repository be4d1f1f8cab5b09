"""Teams: create, members, roles, invite links, last-owner rule, delete, spending and the cap."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from apps.teams import services
from apps.teams.models import Invite, MemberInvitation, Membership, Role, Team
from tests.conftest import make_user
from tests.web.runs_factories import make_run

pytestmark = pytest.mark.django_db


def django_capture_on_commit():
    """Run on_commit callbacks (file removal) inside the test's transaction."""
    from django.test import TestCase

    return TestCase.captureOnCommitCallbacks(execute=True)


@pytest.fixture
def shared(user):
    """A shared team owned by alice."""
    return services.team_create(user, "Legal")


def member(team, username: str, role: str):
    person = make_user(username)
    Membership.objects.create(team=team, user=person, role=role)
    return person


def signed_in(client, person):
    client.force_login(person)
    return client


# --- pages -----------------------------------------------------------------------------------------

def test_team_list_shows_my_teams_and_creates_one(client, user, shared):
    signed_in(client, user)
    page = client.get(reverse("team_list"))
    assert page.status_code == 200
    assert "Legal" in page.content.decode() and "alice&#x27;s team" in page.content.decode()
    response = client.post(reverse("team_list"), {"name": "  Research   lab "})
    team = Team.objects.get(name="Research lab")
    assert response.status_code == 302 and response["Location"] == reverse("team_detail", args=[team.pk])
    assert Membership.objects.get(team=team, user=user).role == Role.OWNER
    assert client.session["team_id"] == team.pk


def test_empty_team_name_is_refused(client, user):
    signed_in(client, user)
    assert client.post(reverse("team_list"), {"name": "  "}).status_code == 400


def test_team_of_someone_else_is_404(client, other_user, shared):
    signed_in(client, other_user)
    for name in ("team_detail", "team_spend"):
        assert client.get(reverse(name, args=[shared.pk])).status_code == 404
    assert client.post(reverse("team_member_add", args=[shared.pk]), {"username": "mallory"}).status_code == 404


def test_admin_invites_an_existing_user_who_joins_by_accepting(client, user, shared):
    bob = make_user("bob")
    admin = member(shared, "ada", Role.ADMIN)
    signed_in(client, admin).post(reverse("team_member_add", args=[shared.pk]), {"username": "bob", "role": "viewer"})
    assert not Membership.objects.filter(team=shared, user=bob).exists()  # not enrolled unasked
    page = signed_in(client, bob).get(reverse("team_list")).content.decode()
    invitation = MemberInvitation.objects.get(team=shared, user=bob)
    assert 'id="invitations"' in page and "Legal" in page
    response = client.post(reverse("team_invitation_accept", args=[invitation.pk]))
    assert response.status_code == 302
    assert Membership.objects.get(team=shared, user=bob).role == Role.VIEWER
    assert not MemberInvitation.objects.exists()


def test_the_answer_to_adding_a_name_does_not_tell_whether_it_exists(client, user, shared):
    make_user("bob")
    member(shared, "carol", Role.MEMBER)
    signed_in(client, user)

    def answer(username: str) -> tuple[int, str]:
        response = client.post(f"/api/teams/{shared.pk}/members/", {"username": username, "role": "member"},
                               content_type="application/json")
        return response.status_code, response.json()["message"].replace(repr(username), "NAME")

    assert answer("bob") == answer("no-such-person") == answer("carol")  # new, unknown, already a member
    assert answer("bob")[0] == 202
    assert list(MemberInvitation.objects.values_list("user__username", flat=True)) == ["bob"]


def test_an_invitation_is_accepted_or_declined_only_by_its_invitee(client, user, shared, other_user):
    bob = make_user("bob")
    services.member_add(user, shared, "bob", Role.MEMBER)
    invitation = MemberInvitation.objects.get(user=bob)
    signed_in(client, other_user)
    assert client.post(f"/api/teams/invitations/{invitation.pk}/").status_code == 404
    assert client.post(reverse("team_invitation_accept", args=[invitation.pk])).status_code == 404
    assert not Membership.objects.filter(team=shared, user__in=[bob, other_user]).exists()
    signed_in(client, bob)
    assert client.get("/api/teams/invitations/").json()["invitations"][0]["team"]["name"] == "Legal"
    assert client.delete(f"/api/teams/invitations/{invitation.pk}/").status_code == 204
    assert not MemberInvitation.objects.exists() and not Membership.objects.filter(team=shared, user=bob).exists()


def test_members_and_viewers_cannot_manage(client, shared):
    make_user("bob")
    for role in (Role.MEMBER, Role.VIEWER):
        person = member(shared, f"p-{role}", role)
        client.force_login(person)
        response = client.post(reverse("team_member_add", args=[shared.pk]), {"username": "bob"})
        assert response.status_code == 403
        assert client.post(reverse("team_invite_create", args=[shared.pk]), {"role": "member"}).status_code == 403
    assert not Membership.objects.filter(team=shared, user__username="bob").exists()


def test_admin_cannot_touch_owners_or_grant_owner(shared, user):
    admin = member(shared, "ada", Role.ADMIN)
    bob = member(shared, "bob", Role.MEMBER)
    owner_membership = Membership.objects.get(team=shared, user=user)
    with pytest.raises(PermissionDenied):
        services.member_set_role(admin, Membership.objects.get(team=shared, user=bob), Role.OWNER)
    with pytest.raises(PermissionDenied):
        services.member_set_role(admin, owner_membership, Role.MEMBER)
    with pytest.raises(PermissionDenied):
        services.member_remove(admin, owner_membership)
    services.member_set_role(admin, Membership.objects.get(team=shared, user=bob), Role.ADMIN)
    assert Membership.objects.get(team=shared, user=bob).role == Role.ADMIN


def test_last_owner_cannot_be_demoted_removed_or_leave(client, user, shared):
    mine = Membership.objects.get(team=shared, user=user)
    with pytest.raises(ValidationError):
        services.member_set_role(user, mine, Role.ADMIN)
    with pytest.raises(ValidationError):
        services.member_remove(user, mine)
    signed_in(client, user)
    response = client.post(reverse("team_member_remove", args=[shared.pk, mine.pk]), follow=True)
    assert "last owner" in response.content.decode()
    second = member(shared, "olga", Role.OWNER)
    services.member_set_role(second, mine, Role.MEMBER)
    assert Membership.objects.get(pk=mine.pk).role == Role.MEMBER


def test_member_can_leave(client, shared):
    bob = member(shared, "bob", Role.MEMBER)
    membership = Membership.objects.get(team=shared, user=bob)
    response = signed_in(client, bob).post(reverse("team_member_remove", args=[shared.pk, membership.pk]))
    assert response.status_code == 302 and not Membership.objects.filter(pk=membership.pk).exists()


def test_change_role_page(client, user, shared):
    bob = member(shared, "bob", Role.VIEWER)
    membership = Membership.objects.get(team=shared, user=bob)
    signed_in(client, user).post(reverse("team_member_role", args=[shared.pk, membership.pk]), {"role": "admin"})
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_personal_team_takes_no_members_and_is_not_deleted(user, team):
    make_user("bob")
    with pytest.raises(ValidationError):
        services.member_add(user, team, "bob")
    with pytest.raises(ValidationError):
        services.team_delete(user, team)


def test_only_owner_deletes_team_with_its_name(client, user, shared):
    admin = member(shared, "ada", Role.ADMIN)
    assert signed_in(client, admin).post(reverse("team_delete", args=[shared.pk]),
                                         {"confirm": "Legal"}).status_code == 403
    client.force_login(user)
    client.post(reverse("team_delete", args=[shared.pk]), {"confirm": "wrong"})
    assert Team.objects.filter(pk=shared.pk).exists()
    client.post(reverse("team_delete", args=[shared.pk]), {"confirm": "Legal"})
    assert not Team.objects.filter(pk=shared.pk).exists()


def test_deleting_a_team_deletes_its_runs_documents_and_files(user, shared):
    from apps.documents.models import Document
    from apps.runs.models import Run, RunStatus
    from tests.web.runs_factories import make_document

    doc = make_document(shared, user=user)
    run = make_run(shared, user, [doc], status=RunStatus.RUNNING)
    with pytest.raises(ValidationError, match="still queued or running"):
        services.team_delete(user, shared)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    with django_capture_on_commit():
        services.team_delete(user, shared)
    assert not Team.objects.filter(pk=shared.pk).exists()
    assert not Run.objects.filter(pk=run.pk).exists() and not Document.objects.filter(pk=doc.pk).exists()
    assert not doc.text_path.exists()


# --- invites ---------------------------------------------------------------------------------------

def _invite_url(response) -> str:
    match = re.search(r'id="new-invite-url">([^<]+)<', response.content.decode())
    assert match, "the new invite link is shown"
    return match.group(1)


def test_invite_link_single_use(client, user, shared):
    signed_in(client, user)
    response = client.post(reverse("team_invite_create", args=[shared.pk]), {"role": "viewer", "days": "3"})
    assert response.status_code == 201
    url = _invite_url(response)
    invite = Invite.objects.get(team=shared)
    assert invite.token_hash not in url and url.split("/")[-2] not in invite.token_hash  # only the hash is stored
    path = url.split("testserver")[1]

    bob = make_user("bob")
    client.force_login(bob)
    page = client.get(path)
    assert page.status_code == 200 and "Join Legal" in page.content.decode()
    assert client.post(path).status_code == 302
    assert Membership.objects.get(team=shared, user=bob).role == Role.VIEWER
    assert client.post(path).status_code == 302  # already a member: no use spent, no error

    carol = make_user("carol")
    client.force_login(carol)
    assert client.get(path).status_code == 410
    assert client.post(path).status_code == 410
    assert not Membership.objects.filter(team=shared, user=carol).exists()


def test_invite_multi_use_expiry_revoke(user, shared):
    invite, raw = services.invite_create(user, shared, Role.MEMBER, days=1, max_uses=None)
    for name in ("a1", "a2", "a3"):
        services.invite_accept(make_user(name), raw)
    assert Invite.objects.get(pk=invite.pk).uses == 3
    Invite.objects.filter(pk=invite.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(ValidationError, match="expired"):
        services.invite_accept(make_user("late"), raw)
    invite2, raw2 = services.invite_create(user, shared)
    services.invite_revoke(user, invite2)
    with pytest.raises(ValidationError, match="revoked"):
        services.invite_accept(make_user("late2"), raw2)
    with pytest.raises(ValidationError, match="not valid"):
        services.invite_accept(make_user("late3"), "nonsense")


def test_invite_page_needs_sign_in_and_unknown_is_404(client, user, shared):
    _, raw = services.invite_create(user, shared)
    response = client.get(reverse("invite_accept", args=[raw]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    client.force_login(make_user("bob"))
    assert client.get(reverse("invite_accept", args=["x" * 43])).status_code == 404


def test_admin_cannot_invite_owners(shared):
    admin = member(shared, "ada", Role.ADMIN)
    with pytest.raises(PermissionDenied):
        services.invite_create(admin, shared, Role.OWNER)


# --- spending --------------------------------------------------------------------------------------

def test_spend_page_totals_per_user_and_unknown(client, user, shared):
    bob = member(shared, "bob", Role.MEMBER)
    make_run(shared, user, cost_usd=0.25)
    make_run(shared, bob, cost_usd=0.5)
    make_run(shared, bob, cost_usd=0.0, cost_unknown_calls=2)
    viewer = member(shared, "vic", Role.VIEWER)
    page = signed_in(client, viewer).get(reverse("team_spend", args=[shared.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "≥ $0.7500 + unknown (2 calls of unknown price)" in html
    assert 'name="monthly_cap_usd"' not in html  # viewers see, do not set
    assert client.get(reverse("team_spend", args=[shared.pk]) + "?days=90").status_code == 200


def test_only_unknown_cost_is_never_zero(client, user, shared):
    make_run(shared, user, cost_usd=0.0, cost_unknown_calls=1)
    html = signed_in(client, user).get(reverse("team_spend", args=[shared.pk])).content.decode()
    assert 'id="total-cost">unknown (1 call of unknown price)' in html


def test_cap_set_by_admin_and_guard(client, user, shared):
    admin = member(shared, "ada", Role.ADMIN)
    bob = member(shared, "bob", Role.MEMBER)
    signed_in(client, bob)
    assert client.post(reverse("team_cap", args=[shared.pk]), {"monthly_cap_usd": "1"}).status_code == 403
    client.force_login(admin)
    client.post(reverse("team_cap", args=[shared.pk]), {"monthly_cap_usd": "1.00"})
    shared.refresh_from_db()
    assert shared.monthly_cap_usd == Decimal("1.00")
    services.team_spend_guard(shared)  # nothing spent yet
    make_run(shared, bob, cost_usd=0.6)
    services.team_spend_guard(shared)
    make_run(shared, bob, cost_usd=0.4)
    with pytest.raises(ValidationError, match=r"monthly spending cap of \$1\.00"):
        services.team_spend_guard(shared)
    old = make_run(shared, bob, cost_usd=100)
    type(old).objects.filter(pk=old.pk).update(created_at=services.month_start() - dt.timedelta(days=1))
    client.post(reverse("team_cap", args=[shared.pk]), {"monthly_cap_usd": ""})
    shared.refresh_from_db()
    assert shared.monthly_cap_usd is None
    services.team_spend_guard(shared)


def test_cap_rejects_negative_and_garbage(user, shared):
    with pytest.raises(ValidationError):
        services.team_set_cap(user, shared, Decimal("-1"))
    with pytest.raises(ValidationError):
        services.team_set_cap(user, shared, Decimal("NaN"))
