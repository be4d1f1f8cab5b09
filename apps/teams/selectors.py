"""Reading teams: members, invites, and what the team spent."""

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.accounts.requests import AuthenticatedRequest
from rlmweb.ids import parse_id
from rlmweb.web.errors import Invalid, NotFound

from .models import DeletedRunSpend, Invite, Membership, Team
from .permissions import can

SPEND_PERIODS = (30, 90)


def team_for_request(request: AuthenticatedRequest, team_id: object = None) -> Team:
    """The team named by `team_id` (else `?team=`), else the user's current team.

    A team id that is not an integer is Invalid (400); a team that does not exist or that the user
    is not a member of is NotFound (404), the same answer for both."""
    team_id = team_id if team_id is not None else request.GET.get("team")
    if team_id in (None, ""):
        if request.team is None:  # a user in no team at all
            raise NotFound("No such team.")
        return request.team
    team_pk = parse_id(team_id)
    if team_pk is None:
        raise Invalid("team must be a team id (an integer).", fields={"team": ["Must be an integer."]})
    team = Team.objects.filter(pk=team_pk).first()
    if team is None or not can(request.user, "view", team):
        raise NotFound("No such team.")
    return team


def team_members(team: Team):
    return Membership.objects.filter(team=team).select_related("user").order_by("user__username")


def team_invites(team: Team):
    return Invite.objects.filter(team=team).select_related("created_by")


@dataclass
class SpendRow:
    """Cost of a set of runs. `unknown_calls` counts calls of unknown price: never shown as $0.

    Deleted runs are included (their cost is kept in `DeletedRunSpend`); `deleted_runs` says how
    many of `runs` have since been deleted.
    """

    cost_usd: float = 0.0
    unknown_calls: int = 0
    runs: int = 0
    deleted_runs: int = 0

    @property
    def display(self) -> str:
        """"$1.2300", "≥ $1.2300 + unknown (3 calls)", or "unknown": an unknown price is never $0."""
        if not self.unknown_calls:
            return f"${self.cost_usd:.4f}"
        calls = f"{self.unknown_calls} call{'s' if self.unknown_calls != 1 else ''}"
        if not self.cost_usd:
            return f"unknown ({calls} of unknown price)"
        return f"≥ ${self.cost_usd:.4f} + unknown ({calls} of unknown price)"

    def add(self, cost: float | None, unknown: int | None, runs: int, deleted: bool = False) -> None:
        self.cost_usd += cost or 0.0
        self.unknown_calls += unknown or 0
        self.runs += runs
        if deleted:
            self.deleted_runs += runs


@dataclass
class SpendReport:
    days: int
    start: dt.date
    total: SpendRow
    per_day: list[tuple[dt.date, SpendRow, dict[str, float]]]  # (day, total, {username: cost})
    per_user: list[tuple[str, SpendRow]]
    users: list[str] = field(default_factory=list)


def team_spend_report(team: Team, days: int) -> SpendReport:
    """Cost per day and per user over the last `days` days (UTC), by run creation date.

    Deleted runs count too, on the day they were created and for the person who asked them.
    """
    today = timezone.now().astimezone(dt.UTC).date()
    start = today - dt.timedelta(days=days - 1)
    start_at = dt.datetime.combine(start, dt.time.min, tzinfo=dt.UTC)

    def grouped(queryset, created_at: str):
        return (
            queryset.annotate(day=TruncDate(created_at, tzinfo=dt.UTC))
            .values("day", "created_by__username")
            .annotate(cost=Sum("cost_usd"), unknown=Sum("cost_unknown_calls"), runs=Count("id"))
            .order_by("day")
        )

    live = grouped(team.runs.filter(created_at__gte=start_at, imported=False), "created_at")
    deleted = grouped(DeletedRunSpend.objects.filter(team=team, run_created_at__gte=start_at), "run_created_at")
    total = SpendRow()
    days_map: dict[dt.date, tuple[SpendRow, dict[str, float]]] = {start + dt.timedelta(days=i): (SpendRow(), {}) for i in range(days)}
    users: dict[str, SpendRow] = {}
    for is_deleted, rows in ((False, live), (True, deleted)):
        for row in rows:
            name = row["created_by__username"] or "(deleted user)"
            total.add(row["cost"], row["unknown"], row["runs"], is_deleted)
            users.setdefault(name, SpendRow()).add(row["cost"], row["unknown"], row["runs"], is_deleted)
            day_total, by_user = days_map.setdefault(row["day"], (SpendRow(), {}))
            day_total.add(row["cost"], row["unknown"], row["runs"], is_deleted)
            by_user[name] = by_user.get(name, 0.0) + (row["cost"] or 0.0)
    per_user = sorted(users.items(), key=lambda item: (-item[1].cost_usd, item[0]))
    return SpendReport(
        days=days, start=start, total=total,
        per_day=[(day, row, by_user) for day, (row, by_user) in sorted(days_map.items())],
        per_user=per_user, users=[name for name, _ in per_user],
    )
