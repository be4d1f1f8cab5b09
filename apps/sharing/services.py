"""Share links: create, revoke, resolve a token, and what a link holder may read.

A link holder reads one run: its summary, its events and (only when the link allows it) the
extracted text of its documents. Events are served through `shared_event`, which keeps for each
event type only the fields the engine documents (`worker.engine.events`): what the trajectory
itself contains (prompts, code, outputs, answers, costs), so a field added to an event later is
not exposed by a link before someone decides it should be.
"""

import datetime as dt
import re
from dataclasses import dataclass

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.utils import timezone

from apps.runs.models import Run
from apps.teams.permissions import can, can_change

from .models import ShareLink, hash_token

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # secrets.token_urlsafe(32)
EXPIRY_DAYS_MAX = 365

SHARED_FIELDS: dict[str, frozenset[str]] = {
    "run.started": frozenset({"question", "mode", "root_model", "sub_model", "limits", "documents", "offline"}),
    "root.turn": frozenset({"node_id", "depth", "iteration", "content", "prompt_tokens", "completion_tokens",
                            "cost_usd", "latency_s", "attempts", "model", "forced"}),
    "cell.started": frozenset({"cell_id", "node_id", "depth", "iteration", "index", "code"}),
    "cell.finished": frozenset({"cell_id", "node_id", "depth", "stdout", "stdout_chars", "truncated", "error",
                                "duration_s", "killed", "state_note"}),
    "subcall.started": frozenset({"node_id", "parent_id", "cell_id", "depth", "kind", "model", "prompt",
                                  "prompt_chars", "ranges", "batch_id", "batch_index"}),
    "subcall.finished": frozenset({"node_id", "response", "response_chars", "prompt_tokens", "completion_tokens",
                                   "cost_usd", "latency_s", "error", "attempts"}),
    "cost.updated": frozenset({"totals"}),
    "final.answer": frozenset({"answer", "source", "node_id"}),
    "run.finished": frozenset({"status", "failure_reason", "stop_reason", "totals", "forced_final"}),
    "root.compacted": frozenset({"node_id", "depth", "iteration", "tokens_before", "tokens_after", "window",
                                 "turns_compacted", "summary", "model", "prompt_tokens", "completion_tokens",
                                 "cost_usd", "latency_s", "attempts"}),
    "helpers.loaded": frozenset({"helpers"}),
    "snapshot.restored": frozenset({"variables", "not_carried", "error"}),
    "snapshot.saved": frozenset({"variables", "not_carried", "bytes", "error"}),
}


def can_share(user: User, run: Run) -> bool:
    """Who manages a run's links: its creator (member and above) and the team's admins and owners."""
    return can_change(user, run.team, run.created_by_id)


def share_create(user: User, run: Run, expires_in_days: int | None = None,
                 show_document_text: bool = False) -> tuple[ShareLink, str]:
    """A new link; returns it and its token (stored only as a hash, so shown once)."""
    if not can_share(user, run):
        raise PermissionDenied("Only the run's creator or the team's admins can share it by link.")
    expires_at = None
    if expires_in_days is not None:
        if isinstance(expires_in_days, bool) or not isinstance(expires_in_days, int) \
                or not 1 <= expires_in_days <= EXPIRY_DAYS_MAX:
            raise ValidationError(f"A link expires after 1 to {EXPIRY_DAYS_MAX} days, or never.", code="expiry")
        expires_at = timezone.now() + dt.timedelta(days=expires_in_days)
    raw = ShareLink.new_token()
    link = ShareLink.objects.create(
        run=run, token_hash=hash_token(raw), prefix=raw[:6], created_by=user, expires_at=expires_at,
        show_document_text=bool(show_document_text),
    )
    return link, raw


def share_revoke(user: User, link: ShareLink) -> ShareLink:
    if not can_share(user, link.run) and not can_change(user, link.run.team, link.created_by_id):
        raise PermissionDenied("Only the link's creator, the run's creator or the team's admins can revoke it.")
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
    return link


def share_links_for_run(run: Run):
    return ShareLink.objects.filter(run=run).select_related("created_by")


def share_link_for_user(user: User, link_id) -> ShareLink | None:
    """A link by id if the user may view its run's team; None otherwise (other teams: not found)."""
    link = ShareLink.objects.select_related("run__team").filter(pk=link_id).first()
    if link is None or not can(user, "view", link.run.team):
        return None
    return link


@dataclass(frozen=True)
class Resolved:
    """What a token opens: `state` is active, revoked, expired, missing or malformed."""

    state: str
    link: ShareLink | None = None


def share_resolve(raw: str) -> Resolved:
    if not isinstance(raw, str) or not TOKEN_RE.match(raw):
        return Resolved("malformed")
    link = ShareLink.objects.select_related("run").filter(token_hash=hash_token(raw)).first()
    if link is None:
        return Resolved("missing")
    return Resolved(link.state, link)


def share_record_view(link: ShareLink) -> None:
    ShareLink.objects.filter(pk=link.pk).update(view_count=F("view_count") + 1)


def shared_event(event: dict) -> dict:
    """An event as a link holder sees it: the documented fields of its type, nothing else."""
    allowed = SHARED_FIELDS.get(event.get("type", ""), frozenset())
    data = {k: v for k, v in (event.get("data") or {}).items() if k in allowed}
    if isinstance(data.get("documents"), list):
        data["documents"] = [
            {"name": d.get("name"), "chars": d.get("chars")} for d in data["documents"] if isinstance(d, dict)
        ]
    return {"seq": event["seq"], "type": event["type"], "ts": event["ts"], "data": data}
