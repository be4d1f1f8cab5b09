"""Spending survives run deletion: a deleted run's cost keeps counting toward the month, the cap and
the spending report (page and API), so a member cannot delete runs to erase history or get back
under the cap."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.runs import services as runs
from apps.runs.models import Run, RunStatus
from apps.teams import selectors, services
from apps.teams.models import DeletedRunSpend, Membership, Role
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_document, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_dir", "clean_rate_limits")]


@pytest.fixture
def shared(user):
    """The shared team "Legal", owned by alice, with a $1.00 monthly cap."""
    team = services.team_create(user, "Legal")
    team.monthly_cap_usd = Decimal("1.00")
    team.save(update_fields=["monthly_cap_usd"])
    return team


@pytest.fixture
def bob(shared):
    person = make_user("bob")
    Membership.objects.create(team=shared, user=person, role=Role.MEMBER)
    return person


@pytest.fixture
def doc(shared, user):
    return make_document(shared, user=user)


def ask(person, team, doc):
    return runs.run_create(person, team, "What is the secret code?", [doc.pk], mode="rlm",
                           root_model="offline/heuristic", sub_model="offline/heuristic")


def shape(report: selectors.SpendReport):
    """What the report shows, without the deleted-run markers."""
    def row(r):
        return round(r.cost_usd, 6), r.unknown_calls, r.runs

    return (
        row(report.total),
        [(day, row(r), {name: round(cost, 6) for name, cost in by_user.items()}) for day, r, by_user in report.per_day],
        [(name, row(r)) for name, r in report.per_user],
    )


def test_a_member_cannot_delete_runs_to_get_back_under_the_cap(shared, bob, doc, enqueued):
    first = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.6)
    second = make_run(shared, bob, [doc], status=RunStatus.FAILED, cost_usd=0.4, cost_unknown_calls=3)
    assert services.team_month_spend(shared) == (Decimal("1.0000"), 3)
    with pytest.raises(ValidationError, match=r"monthly spending cap of \$1\.00"):
        ask(bob, shared, doc)

    runs.run_delete(bob, first)  # a member may delete their own finished runs
    runs.run_delete(bob, second)
    assert not Run.objects.filter(pk__in=[first.pk, second.pk]).exists()

    assert services.team_month_spend(shared) == (Decimal("1.0000"), 3)
    before = Run.objects.count()
    with pytest.raises(ValidationError, match=r"monthly spending cap of \$1\.00 \(spent \$1\.00"):
        ask(bob, shared, doc)
    assert Run.objects.count() == before and enqueued == []


def test_deleted_spend_is_recorded_with_the_run_it_came_from(shared, bob, doc):
    run = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.25, cost_unknown_calls=1)
    runs.run_delete(bob, run)
    kept = DeletedRunSpend.objects.get()
    assert (kept.team_id, kept.run_id, kept.created_by_id, kept.run_created_at, kept.cost_usd,
            kept.cost_unknown_calls) == (shared.pk, run.pk, bob.pk, run.created_at, 0.25, 1)


def test_a_refused_delete_records_no_spend(shared, user, bob, doc, monkeypatch):
    running = make_run(shared, bob, [doc], status=RunStatus.RUNNING, cost_usd=0.3)
    with pytest.raises(runs.RunConflict):
        runs.run_delete(bob, running)
    finished = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.3)

    def broken(self, *args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Run, "delete", broken)
    with pytest.raises(RuntimeError):
        runs.run_delete(bob, finished)
    # Same transaction as the delete: nothing recorded, nothing counted twice.
    assert not DeletedRunSpend.objects.exists()
    assert services.team_month_spend(shared) == (Decimal("0.6000"), 0)


def test_spend_report_is_unchanged_by_deleting_a_run(client, shared, user, bob, doc):
    make_run(shared, user, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.25)
    gone = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.5, cost_unknown_calls=2)
    make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.125)
    older = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.0625)
    Run.objects.filter(pk=older.pk).update(created_at=older.created_at - dt.timedelta(days=40))
    reports = {days: selectors.team_spend_report(shared, days) for days in selectors.SPEND_PERIODS}
    client.force_login(user)
    api_before = client.get(reverse("api_team_spend", args=[shared.pk]) + "?days=90").json()

    runs.run_delete(bob, gone)
    runs.run_delete(user, Run.objects.get(pk=older.pk))  # an admin deletes someone else's, too

    for days, before in reports.items():
        after = selectors.team_spend_report(shared, days)
        assert shape(after) == shape(before), days
    after = selectors.team_spend_report(shared, 90)
    assert after.total.runs == 4 and after.total.deleted_runs == 2
    assert dict(after.per_user)["bob"].deleted_runs == 2 and dict(after.per_user)["alice"].deleted_runs == 0
    assert client.get(reverse("api_team_spend", args=[shared.pk]) + "?days=90").json() == api_before

    html = client.get(reverse("team_spend", args=[shared.pk])).content.decode()
    assert 'id="total-cost">≥ $0.8750 + unknown (2 calls of unknown price)' in html
    assert "over 3 runs (<span id=\"deleted-runs\">1 since deleted</span>)" in html


def test_deleted_spend_counts_in_the_month_the_run_was_created(shared, bob, doc, enqueued):
    last_month = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=5.0)
    Run.objects.filter(pk=last_month.pk).update(created_at=services.month_start() - dt.timedelta(hours=1))
    runs.run_delete(bob, Run.objects.get(pk=last_month.pk))
    assert services.team_month_spend(shared) == (Decimal("0.0000"), 0)
    ask(bob, shared, doc)  # last month's spend does not count against this month's cap
    assert selectors.team_spend_report(shared, 90).total.cost_usd == 5.0


def test_deleted_users_spend_still_counts_and_team_delete_takes_it(shared, user, bob, doc):
    run = make_run(shared, bob, [doc], status=RunStatus.SUCCEEDED, cost_usd=0.75)
    runs.run_delete(user, run)
    bob.delete()
    report = selectors.team_spend_report(shared, 30)
    assert [(name, row.cost_usd, row.deleted_runs) for name, row in report.per_user] == [("(deleted user)", 0.75, 1)]
    assert services.team_month_spend(shared) == (Decimal("0.7500"), 0)
    services.team_delete(user, shared)
    assert not DeletedRunSpend.objects.exists()
