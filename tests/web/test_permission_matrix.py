"""Every page, JSON endpoint, websocket and download, tried by every kind of visitor.

Visitors: anonymous, a user of another team ("outsider"), each role of the team (viewer, member,
admin, owner), and three anonymous holders of a share link of the team's run: an active link, a
revoked one and an expired one. Each row says what each visitor gets — status codes, websocket
close codes — denials included; rows that change something also say who changed it.

The table follows `apps.teams.permissions` (viewers read; members also create and change their
own things; admins also manage members, spending and others' things; owners also delete the
team). Objects of another team are a 404 like objects that do not exist, and ids are UUIDs (teams
and memberships, which are integers, answer 404 to anyone outside the team), so nothing is
reachable by guessing or incrementing an id.
"""

import datetime as dt
import json
import uuid
from dataclasses import dataclass, field

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.utils import timezone

from apps.comments.models import Comment
from apps.documents.models import Document
from apps.runs.models import Run, RunStatus
from apps.runs.sink import persist_events
from apps.sharing import services as sharing
from apps.sharing.models import ShareLink, hash_token
from apps.teams import services as teams
from apps.teams.models import Invite, Membership, Role, Team
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_document, make_events, make_run  # noqa: F401
from tests.web.test_sharing import ws_client

ANON, OUT, V, M, A, OW, LINK, REVOKED, EXPIRED = (
    "anonymous", "outsider", "viewer", "member", "admin", "owner", "link", "revoked_link", "expired_link")
VISITORS = (ANON, OUT, V, M, A, OW, LINK, REVOKED, EXPIRED)
ROLES = (V, M, A, OW)
LINK_HOLDERS = (LINK, REVOKED, EXPIRED)
OPEN = "open"  # a websocket that replays the run


def exp(anon, out, viewer, member=None, admin=None, owner=None, link=None, revoked=None, expired=None) -> dict:
    """Expected outcome per visitor; later roles default to the one before, link holders to anonymous."""
    member = viewer if member is None else member
    admin = member if admin is None else admin
    owner = admin if owner is None else owner
    link = anon if link is None else link
    return {ANON: anon, OUT: out, V: viewer, M: member, A: admin, OW: owner, LINK: link,
            REVOKED: anon if revoked is None else revoked, EXPIRED: anon if expired is None else expired}


@dataclass
class Row:
    method: str
    url: str
    expected: dict
    body: dict | None = None
    json: bool = False
    changed: str = ""  # a World method telling whether the request changed something
    allowed: tuple = field(default_factory=tuple)  # who may change it (when `changed` is set)
    prepare: str = ""  # a World method to call first


# Reading runs, documents and their exports.
READ = exp(anon=302, out=404, viewer=200)
API_READ = exp(anon=401, out=404, viewer=200)
SHARE_READ = exp(anon=404, out=404, viewer=404, link=200, revoked=410, expired=410)

ROWS = [
    # --- runs: pages, events, trajectory export ----------------------------------------------------
    Row("GET", "/runs/", exp(302, 200, 200)),
    Row("GET", "/runs/new/", exp(302, 200, 200)),
    Row("POST", "/runs/new/", exp(302, 400, 403, 400), body={"question": ""}),
    Row("GET", "/runs/{run}/", READ),
    Row("GET", "/runs/{run}/events.json", READ),
    Row("GET", "/runs/{run}/trajectory.json", READ),
    Row("GET", "/runs/{run}/rerun/", READ),
    Row("POST", "/runs/{run}/rerun/", exp(302, 404, 403, 400), body={"question": ""}),
    Row("GET", "/runs/compare/?a={run}&b={member_run}", READ),
    Row("POST", "/runs/{run}/cancel/", exp(302, 404, 403, 403, 302), changed="run_cancelled", allowed=(A, OW)),
    Row("POST", "/runs/{member_run}/cancel/", exp(302, 404, 403, 302), changed="member_run_cancelled",
        allowed=(M, A, OW)),
    Row("POST", "/runs/{run}/delete/", exp(302, 404, 403, 403, 302), body={"confirm": "yes"}, changed="run_deleted",
        allowed=(A, OW), prepare="finish_runs"),
    Row("POST", "/runs/{member_run}/delete/", exp(302, 404, 403, 302), body={"confirm": "yes"},
        changed="member_run_deleted", allowed=(M, A, OW), prepare="finish_runs"),
    Row("GET", "/runs/{other_run}/", exp(302, 200, 404)),
    Row("GET", "/runs/{missing}/", exp(302, 404, 404)),
    Row("GET", "/runs/{other_run}/events.json", exp(302, 200, 404)),
    Row("GET", "/runs/{other_run}/trajectory.json", exp(302, 200, 404)),
    # --- runs: JSON API ------------------------------------------------------------------------------
    Row("GET", "/api/runs/?team={team}", API_READ),
    Row("GET", "/api/runs/{run}/", API_READ),
    Row("GET", "/api/runs/{run}/events/", API_READ),
    Row("GET", "/api/runs/models/", exp(401, 200, 200)),
    Row("DELETE", "/api/runs/{run}/", exp(401, 404, 403, 403, 200), json=True, changed="run_deleted",
        allowed=(A, OW), prepare="finish_runs"),
    Row("DELETE", "/api/runs/{member_run}/", exp(401, 404, 403, 200), json=True, changed="member_run_deleted",
        allowed=(M, A, OW), prepare="finish_runs"),
    Row("GET", "/api/runs/{other_run}/", exp(401, 200, 404)),
    Row("GET", "/api/runs/{missing}/", exp(401, 404, 404)),
    Row("POST", "/api/runs/", exp(401, 404, 403, 400), body={"team": "{team}", "question": "q", "documents": []},
        json=True),
    Row("POST", "/api/runs/{run}/cancel/", exp(401, 404, 403, 403, 200), json=True, changed="run_cancelled",
        allowed=(A, OW)),
    Row("POST", "/api/runs/{run}/rerun/", exp(401, 404, 403, 400), body={"documents": []}, json=True),
    # --- documents ---------------------------------------------------------------------------------
    Row("GET", "/documents/", exp(302, 200, 200)),
    Row("GET", "/api/documents/?team={team}", API_READ),
    Row("GET", "/api/documents/{doc}/", API_READ),
    Row("GET", "/api/documents/{other_doc}/", exp(401, 200, 404)),
    Row("GET", "/documents/{doc}/text", READ),
    Row("GET", "/documents/{doc}/file", READ),
    Row("GET", "/api/documents/{doc}/file", API_READ),
    Row("GET", "/documents/{other_doc}/file", exp(302, 200, 404)),
    Row("GET", "/api/documents/{other_doc}/file", exp(401, 200, 404)),
    Row("POST", "/api/documents/uploads/?team={team}", exp(401, 404, 403, 201), body={"name": "a.txt", "size": 5},
        json=True),
    Row("POST", "/documents/uploads/?team={team}", exp(401, 404, 403, 201), body={"name": "a.txt", "size": 5},
        json=True),
    Row("GET", "/api/documents/{doc}/text", API_READ),
    Row("GET", "/api/documents/{other_doc}/text", exp(401, 200, 404)),
    Row("GET", "/documents/status/?ids={doc}", exp(401, 200, 200)),
    Row("POST", "/documents/{loose_doc}/delete/", exp(302, 404, 302), changed="loose_doc_deleted", allowed=(A, OW)),
    Row("DELETE", "/api/documents/{loose_doc}/", exp(401, 404, 403, 403, 200), json=True,
        changed="loose_doc_deleted", allowed=(A, OW)),
    Row("DELETE", "/api/documents/{member_doc}/", exp(401, 404, 403, 200), json=True,
        changed="member_doc_deleted", allowed=(M, A, OW)),
    # --- teams ---------------------------------------------------------------------------------------
    Row("GET", "/teams/", exp(302, 200, 200)),
    Row("GET", "/teams/{team}/", exp(302, 404, 200)),
    Row("GET", "/teams/{other_team}/", exp(302, 200, 404)),
    Row("GET", "/teams/{missing_team}/", exp(302, 404, 404)),
    Row("GET", "/teams/{team}/spend/", exp(302, 404, 200)),
    Row("POST", "/teams/{team}/switch/", exp(302, 404, 302)),
    Row("POST", "/teams/{team}/members/", exp(302, 404, 403, 403, 302), body={"username": "newcomer"},
        changed="newcomer_invited", allowed=(A, OW)),
    Row("POST", "/teams/{team}/members/{viewer_membership}/role/", exp(302, 404, 403, 403, 302),
        body={"role": "member"}, changed="viewer_promoted", allowed=(A, OW)),
    Row("POST", "/teams/{team}/members/{extra_membership}/remove/", exp(302, 404, 403, 403, 302),
        changed="extra_removed", allowed=(A, OW)),
    Row("POST", "/teams/{team}/invites/", exp(302, 404, 403, 403, 201), body={"role": "member"}),
    Row("POST", "/teams/{team}/invites/{invite}/revoke/", exp(302, 404, 403, 403, 302), changed="invite_revoked",
        allowed=(A, OW)),
    Row("POST", "/teams/{team}/spend/cap/", exp(302, 404, 403, 403, 302), body={"monthly_cap_usd": "5"},
        changed="cap_set", allowed=(A, OW)),
    Row("POST", "/teams/{team}/delete/", exp(302, 404, 403, 403, 403, 302), body={"confirm": "Legal"},
        changed="team_deleted", allowed=(OW,), prepare="finish_runs"),
    Row("GET", "/teams/join/{invite_token}/", exp(302, 200, 200)),
    Row("POST", "/teams/join/{invite_token}/", exp(302, 302, 302), changed="outsider_joined", allowed=(OUT,)),
    Row("POST", "/api/teams/join/", exp(401, 201, 201), body={"token": "{invite_token}"}, json=True,
        changed="outsider_joined", allowed=(OUT,)),
    Row("GET", "/api/teams/", exp(401, 200, 200)),
    Row("GET", "/api/teams/{team}/", exp(401, 404, 200)),
    Row("GET", "/api/teams/{team}/spend/", exp(401, 404, 200)),
    Row("GET", "/api/teams/{team}/invites/", exp(401, 404, 403, 403, 200)),
    Row("POST", "/api/teams/{team}/members/", exp(401, 404, 403, 403, 202), body={"username": "newcomer"},
        json=True, changed="newcomer_invited", allowed=(A, OW)),
    Row("PATCH", "/api/teams/{team}/members/{viewer_membership}/", exp(401, 404, 403, 403, 200),
        body={"role": "member"}, json=True, changed="viewer_promoted", allowed=(A, OW)),
    Row("DELETE", "/api/teams/{team}/members/{extra_membership}/", exp(401, 404, 403, 403, 204), json=True,
        changed="extra_removed", allowed=(A, OW)),
    Row("PATCH", "/api/teams/{team}/", exp(401, 404, 403, 403, 200), body={"monthly_cap_usd": "5"}, json=True,
        changed="cap_set", allowed=(A, OW)),
    Row("DELETE", "/api/teams/{team}/", exp(401, 404, 403, 403, 403, 204), json=True, changed="team_deleted",
        allowed=(OW,), prepare="finish_runs"),
    # --- share links: managing them (signed in) ------------------------------------------------------
    Row("GET", "/s/runs/{run}/", exp(302, 404, 403, 403, 200)),
    Row("GET", "/s/runs/{member_run}/", exp(302, 404, 403, 200)),
    Row("POST", "/s/runs/{run}/new/", exp(302, 404, 403, 403, 201)),
    Row("POST", "/s/runs/{member_run}/new/", exp(302, 404, 403, 201)),
    Row("POST", "/s/links/{link}/revoke/", exp(302, 404, 403, 403, 302), changed="link_revoked", allowed=(A, OW)),
    Row("GET", "/api/sharing/runs/{run}/", exp(401, 404, 403, 403, 200)),
    Row("POST", "/api/sharing/runs/{run}/", exp(401, 404, 403, 403, 201), body={}, json=True),
    Row("DELETE", "/api/sharing/links/{link}/", exp(401, 404, 403, 403, 200), json=True, changed="link_revoked",
        allowed=(A, OW)),
    # --- share links: what a link opens (no sign-in) ---------------------------------------------------
    # Everyone but a holder uses a guessed token; holders use theirs.
    Row("GET", "/s/{token}/", SHARE_READ),
    Row("GET", "/s/{token}/events.json", SHARE_READ),
    Row("GET", "/s/{token}/trajectory.json", SHARE_READ),
    Row("GET", "/s/{token}/documents/0/text", exp(404, 404, 404, link=404, revoked=410, expired=410)),
    Row("GET", "/s/{text_token}/documents/0/text", exp(404, 404, 404, link=200, revoked=410, expired=410)),
    Row("GET", "/s/{text_token}/documents/1/text", exp(404, 404, 404, link=404, revoked=410, expired=410)),
    # --- comments ------------------------------------------------------------------------------------
    Row("GET", "/api/comments/runs/{run}/", API_READ),
    Row("GET", "/api/comments/runs/{other_run}/", exp(401, 200, 404)),
    Row("POST", "/api/comments/runs/{run}/", exp(401, 404, 403, 201), body={"body": "hi"}, json=True),
    Row("PATCH", "/api/comments/{comment}/", exp(401, 404, 403, 403, 403, 200), body={"body": "edit"}, json=True),
    Row("DELETE", "/api/comments/{comment}/", exp(401, 404, 403, 403, 204), json=True, changed="comment_deleted",
        allowed=(A, OW)),
]

# Review (staff's queue: site staff only, not a team role; feedback on a run: the team).
ROWS += [
    Row("GET", "/review/", exp(302, 302, 302)),
    Row("GET", "/api/review/runs/{run}/feedback/", API_READ),
    Row("GET", "/api/review/runs/{other_run}/feedback/", exp(401, 200, 404)),
    Row("POST", "/api/review/runs/{run}/feedback/", exp(401, 404, 200), body={"rating": "up"}, json=True),
    Row("POST", "/review/runs/{run}/feedback/", exp(302, 404, 302), body={"rating": "up"}),
    Row("POST", "/review/runs/{other_run}/feedback/", exp(302, 302, 404), body={"rating": "up"}),
    Row("POST", "/review/bulk/", exp(302, 302, 302), body={"action": "assign_me"}),
]

WS_ROWS = [
    Row("WS", "/ws/runs/{run}/", exp(4401, 4404, OPEN)),
    Row("WS", "/ws/runs/{missing}/", exp(4401, 4404, 4404)),
    Row("WS", "/ws/share/{token}/", exp(4404, 4404, 4404, link=OPEN, revoked=4403, expired=4403)),
    Row("WS", "/ws/share/not-a-token/", exp(4400, 4400, 4400, link=4400, revoked=4400, expired=4400)),
]


class World:
    """The team "Legal" with one user per role, its runs, documents, links and a comment; another team."""

    def __init__(self) -> None:
        self.users = {role: make_user(role) for role in ROLES}
        self.users[OUT] = make_user("outsider")
        make_user("newcomer")
        self.team = teams.team_create(self.users[OW], "Legal")
        for role in (V, M, A):
            Membership.objects.create(team=self.team, user=self.users[role], role=role)
        self.viewer_membership = Membership.objects.get(team=self.team, user=self.users[V])
        self.extra_membership = Membership.objects.create(team=self.team, user=make_user("extra"), role=Role.MEMBER)
        owner, member = self.users[OW], self.users[M]
        self.doc = make_document(self.team, user=owner, name="contract.txt")
        self.loose_doc = make_document(self.team, text="Another text.\n", name="loose.txt", user=owner)
        self.member_doc = make_document(self.team, text="Member's text.\n", name="mine.txt", user=member)
        self.run = make_run(self.team, owner, [self.doc], status=RunStatus.QUEUED)
        persist_events(self.run.pk, make_events(1, 3))
        self.member_run = make_run(self.team, member, [self.doc], status=RunStatus.QUEUED)
        self.other_team = self.users[OUT].teams.get()
        self.other_run = make_run(self.other_team, self.users[OUT], [make_document(self.other_team)])
        self.other_doc = self.other_run.documents.get()
        for doc in (self.doc, self.other_doc):  # the original upload, kept beside the text
            doc.original_file = doc.text_file.replace(".txt", ".original.txt")
            doc.original_path.write_bytes(b"original bytes\n")
            doc.save(update_fields=["original_file"])
        self.link, self.tokens = None, {}
        for holder in LINK_HOLDERS:
            link, self.tokens[holder] = sharing.share_create(owner, self.run)
            self.link = self.link or link
        ShareLink.objects.filter(token_hash=hash_token(self.tokens[REVOKED])).update(revoked_at=timezone.now())
        ShareLink.objects.filter(token_hash=hash_token(self.tokens[EXPIRED])).update(
            expires_at=timezone.now() - dt.timedelta(minutes=1))
        self.text_tokens = {}
        for holder in LINK_HOLDERS:
            _, self.text_tokens[holder] = sharing.share_create(owner, self.run, show_document_text=True)
        ShareLink.objects.filter(token_hash=hash_token(self.text_tokens[REVOKED])).update(revoked_at=timezone.now())
        ShareLink.objects.filter(token_hash=hash_token(self.text_tokens[EXPIRED])).update(
            expires_at=timezone.now() - dt.timedelta(minutes=1))
        self.invite, self.invite_token = teams.invite_create(owner, self.team)
        self.comment = Comment.objects.create(run=self.run, author=owner, body="look here", target_kind="cell",
                                              target_id="c1")

    def values(self, visitor: str) -> dict:
        guessed = sharing.ShareLink.new_token()
        return {
            "team": self.team.pk, "other_team": self.other_team.pk, "missing_team": self.team.pk + 1000,
            "run": self.run.pk, "member_run": self.member_run.pk, "other_run": self.other_run.pk,
            "missing": uuid.uuid4(), "doc": self.doc.pk, "loose_doc": self.loose_doc.pk,
            "member_doc": self.member_doc.pk, "other_doc": self.other_doc.pk,
            "viewer_membership": self.viewer_membership.pk, "extra_membership": self.extra_membership.pk,
            "invite": self.invite.pk, "invite_token": self.invite_token, "link": self.link.pk,
            "comment": self.comment.pk,
            "token": self.tokens.get(visitor, guessed), "text_token": self.text_tokens.get(visitor, guessed),
        }

    def finish_runs(self) -> None:
        Run.objects.filter(team=self.team).update(status=RunStatus.SUCCEEDED)

    # What a row may have changed.
    def run_cancelled(self) -> bool:
        return Run.objects.get(pk=self.run.pk).cancel_requested

    def member_run_cancelled(self) -> bool:
        return Run.objects.get(pk=self.member_run.pk).cancel_requested

    def run_deleted(self) -> bool:
        return not Run.objects.filter(pk=self.run.pk).exists()

    def member_run_deleted(self) -> bool:
        return not Run.objects.filter(pk=self.member_run.pk).exists()

    def outsider_joined(self) -> bool:
        return Membership.objects.filter(team=self.team, user=self.users[OUT]).exists()

    def loose_doc_deleted(self) -> bool:
        return not Document.objects.filter(pk=self.loose_doc.pk).exists()

    def member_doc_deleted(self) -> bool:
        return not Document.objects.filter(pk=self.member_doc.pk).exists()

    def newcomer_invited(self) -> bool:
        """Adding a name invites; the newcomer joins only by accepting."""
        from apps.teams.models import MemberInvitation

        return MemberInvitation.objects.filter(team=self.team, user__username="newcomer").exists()

    def viewer_promoted(self) -> bool:
        return Membership.objects.get(pk=self.viewer_membership.pk).role == Role.MEMBER

    def extra_removed(self) -> bool:
        return not Membership.objects.filter(pk=self.extra_membership.pk).exists()

    def invite_revoked(self) -> bool:
        return Invite.objects.get(pk=self.invite.pk).revoked_at is not None

    def cap_set(self) -> bool:
        return Team.objects.get(pk=self.team.pk).monthly_cap_usd is not None

    def team_deleted(self) -> bool:
        return not Team.objects.filter(pk=self.team.pk).exists()

    def link_revoked(self) -> bool:
        return ShareLink.objects.get(pk=self.link.pk).revoked_at is not None

    def comment_deleted(self) -> bool:
        return Comment.objects.get(pk=self.comment.pk).deleted_at is not None


@pytest.fixture
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def fill(template, values: dict):
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, str):
        filled = template.format(**values)
        return int(filled) if template == "{team}" else filled
    return template


def _cases(rows):
    return [pytest.param(row, visitor, id=f"{row.method} {row.url} as {visitor}") for row in rows
            for visitor in VISITORS]


@pytest.mark.django_db
@pytest.mark.usefixtures("data_dir", "fast_passwords", "clean_rate_limits")
@pytest.mark.parametrize(("row", "visitor"), _cases(ROWS))
def test_http(row: Row, visitor: str):
    world = World()
    if row.prepare:
        getattr(world, row.prepare)()
    values = world.values(visitor)
    client = Client()
    if visitor in world.users:
        client.force_login(world.users[visitor])
        if visitor != OUT:  # pages about "the current team" are about Legal
            session = client.session
            session["team_id"] = world.team.pk
            session.save()
    url = fill(row.url, values)
    body = fill(row.body, values) if row.body is not None else None
    if row.json:
        response = client.generic(row.method, url, data=json.dumps(body or {}),
                                  content_type="application/json")
    elif row.method == "POST":
        response = client.post(url, body or {})
    else:
        response = client.generic(row.method, url)
    assert response.status_code == row.expected[visitor], (visitor, row.method, url)
    if row.changed:
        assert getattr(world, row.changed)() == (visitor in row.allowed), f"{visitor} changed it: {row.changed}"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("data_dir", "fast_passwords")
@pytest.mark.parametrize(("row", "visitor"), _cases(WS_ROWS))
def test_websocket(row: Row, visitor: str):
    world = World()
    url = fill(row.url, world.values(visitor))
    user = world.users.get(visitor)

    async def outcome():
        from django.contrib.auth.models import AnonymousUser

        comm = ws_client(url, user if user is not None else AnonymousUser())
        connected, _ = await comm.connect(timeout=10)
        assert connected
        message = await comm.receive_output(10)
        if message["type"] == "websocket.close":
            return message["code"]
        seqs = []
        while True:
            frame = json.loads(message["text"])
            if frame["type"] == "replayed":
                break
            seqs += [e["seq"] for e in frame["events"]]
            message = await comm.receive_output(10)
        await comm.disconnect()
        assert seqs == [1, 2, 3]
        return OPEN

    assert async_to_sync(outcome)() == row.expected[visitor]
