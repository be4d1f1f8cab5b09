"""Comments on runs, cells and sub-call nodes: who may read, write, edit and delete them.

Read: anyone who may view the run's team. Write: `create` (members and above). Edit: the author
(while still allowed to create). Delete: the author, or `change_any` (admins and owners).
"""

import re

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from apps.runs.models import Run
from apps.teams.permissions import can, role_can, role_in

from .models import Comment, TargetKind

MAX_BODY = 5000
TARGET_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def comments_for_run(run: Run) -> QuerySet[Comment]:
    return Comment.objects.filter(run=run, deleted_at__isnull=True).select_related("author")


def _clean_body(body: object) -> str:
    if not isinstance(body, str) or not body.strip():
        raise ValidationError("Write something first.", code="body")
    body = body.strip()
    if len(body) > MAX_BODY:
        raise ValidationError(f"A comment has at most {MAX_BODY} characters.", code="body")
    return body


def comment_create(user: User, run: Run, body: object, target_kind: str = TargetKind.RUN,
                   target_id: str = "") -> Comment:
    if not can(user, "create", run.team):
        raise PermissionDenied("Your role in this team does not allow commenting.")
    if target_kind not in TargetKind.values:
        raise ValidationError(f"target_kind is one of {', '.join(TargetKind.values)}.", code="target_kind")
    target_id = target_id or ""
    if target_kind == TargetKind.RUN:
        if target_id:
            raise ValidationError("A comment on the run has no target_id.", code="target_id")
    elif not isinstance(target_id, str) or not TARGET_ID_RE.match(target_id):
        raise ValidationError("target_id is the cell's or node's id, e.g. c3 or n17.", code="target_id")
    return Comment.objects.create(run=run, author=user, body=_clean_body(body), target_kind=target_kind,
                                  target_id=target_id)


def can_delete(user: User, comment: Comment, role: str | None = None) -> bool:
    role = role if role is not None else role_in(user, comment.run.team)
    if role_can(role, "change_any"):
        return True
    return comment.author_id is not None and comment.author_id == user.pk and role is not None


def can_edit(user: User, comment: Comment, role: str | None = None) -> bool:
    role = role if role is not None else role_in(user, comment.run.team)
    return comment.author_id is not None and comment.author_id == user.pk and role_can(role, "create")


def comment_edit(user: User, comment: Comment, body: object) -> Comment:
    if not can_edit(user, comment):
        raise PermissionDenied("Only the author can edit a comment.")
    comment.body = _clean_body(body)
    comment.edited_at = timezone.now()
    comment.save(update_fields=["body", "edited_at"])
    return comment


def comment_delete(user: User, comment: Comment) -> None:
    if not can_delete(user, comment):
        raise PermissionDenied("Only the author or the team's admins can delete a comment.")
    comment.deleted_at = timezone.now()
    comment.save(update_fields=["deleted_at"])
