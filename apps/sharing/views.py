"""Share links: the public read-only pages (`/s/<token>/…`, no sign-in) and the run's share panel.

Public pages answer 404 for a token that is malformed or unknown, 410 for a revoked or expired
link, and never serve anything but the one run: its explorer page, its events (fields filtered by
`services.shared_event`), its trajectory export, and — only if the link says so — the extracted
text of its documents by position. No document file, no other run, no user, team or email.
"""

import json
from dataclasses import dataclass

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from apps.runs import selectors as run_selectors
from apps.runs.conversations import run_thread_rows, thread_json
from apps.runs.models import Run
from rlmweb.web.api import int_param
from rlmweb.web.errors import json_errors

from . import services
from .models import ShareLink


@dataclass(frozen=True)
class SharedDocument:
    """What a link holder learns about a document: its name and size, and its text only if allowed."""

    name: str
    chars: int
    text_url: str = ""


@dataclass(frozen=True)
class SharedRun:
    """The run fields a shared page may show; no team, creator, or link to other runs."""

    pk: str
    id: str
    question: str
    status: str
    status_display: str
    mode: str
    mode_display: str
    root_model: str
    sub_model: str
    final_answer: str
    answer_source: str
    failure_reason: str
    stop_reason: str
    limits: dict
    iterations: int
    subcalls: int
    tokens: int
    is_finished: bool
    cost_display: str
    created_at: object
    finished_at: object
    last_seq: int

    def get_status_display(self) -> str:
        return self.status_display

    def get_mode_display(self) -> str:
        return self.mode_display


def _private(response):
    """Link pages carry a secret in their URL: keep them out of caches, referrers and indexes."""
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _active_link(request, token: str, as_json: bool = False):
    """(link, None) for an active link, else (None, the 404/410 response)."""
    resolved = services.share_resolve(token)
    if resolved.state == "active":
        return resolved.link, None
    gone = resolved.state in ("revoked", "expired")
    status = 410 if gone else 404
    message = f"This share link has been {resolved.state}." if gone else "No such share link."
    if as_json:
        return None, _private(JsonResponse({"error": message}, status=status))
    return None, _private(
        render(request, "sharing/unavailable.html", {"state": resolved.state, "message": message}, status=status)
    )


def _shared_run(run: Run) -> SharedRun:
    return SharedRun(
        pk=str(run.pk), id=str(run.pk), question=run.question, status=run.status,
        status_display=run.get_status_display(), mode=run.mode, mode_display=run.get_mode_display(),
        root_model=run.root_model, sub_model=run.sub_model, final_answer=run.final_answer,
        answer_source=run.answer_source, failure_reason=run.failure_reason, stop_reason=run.stop_reason,
        limits=run.limits or {}, iterations=run.iterations, subcalls=run.subcalls, tokens=run.tokens,
        is_finished=run.is_finished, cost_display=run_selectors.cost_display(run), created_at=run.created_at,
        finished_at=run.finished_at, last_seq=run.last_seq,
    )


def _shared_documents(link: ShareLink, token: str) -> list[SharedDocument]:
    return [
        SharedDocument(
            name=d.name, chars=d.chars,
            text_url=reverse("share_document_text", args=[token, i]) if link.show_document_text else "",
        )
        for i, d in enumerate(run_selectors.run_documents(link.run))
    ]


@require_GET
def share_page(request, token: str):
    """The explorer for the shared run, read-only; each view counts."""
    link, refusal = _active_link(request, token)
    if refusal is not None:
        return refusal
    services.share_record_view(link)
    run = link.run
    context = {
        "run": _shared_run(run),
        "documents": _shared_documents(link, token),
        "ws_path": f"/ws/share/{token}/",
        "events_url": reverse("share_events", args=[token]),
        "trajectory_url": reverse("share_trajectory", args=[token]),
        "cost_display": run_selectors.cost_display(run),
        "can_cancel": False,
        "shared": True,
        "show_document_text": link.show_document_text,
        "share_expires_at": link.expires_at,
        "thread": run_thread_rows(run, links=False),
    }
    return _private(render(request, "sharing/run_shared.html", context))


@require_GET
@json_errors
def share_events(request, token: str):
    """The same shape as the run page's events.json, with events as `shared_event` filters them."""
    link, refusal = _active_link(request, token, as_json=True)
    if refusal is not None:
        return refusal
    since = int_param(request, "since", 0, 0, 2**31 - 1)
    limit = int_param(request, "limit", 1000, 1, run_selectors.MAX_EVENTS_PER_REQUEST)
    return _private(JsonResponse(run_selectors.run_events_page(link.run_id, since, limit, services.shared_event)))


def shared_summary(run: Run, documents: list[SharedDocument]) -> dict:
    summary = run_selectors.run_summary(run)
    for private in ("team", "created_by", "rerun_of", "follow_up_of", "conversation_id"):
        summary.pop(private, None)
    summary["documents"] = [{"name": d.name, "chars": d.chars} for d in documents]
    summary["conversation"] = [{k: v for k, v in item.items() if k not in ("id", "follow_up_of")}
                               for item in thread_json(run)]
    return summary


def _trajectory_chunks(run: Run, documents: list[SharedDocument]):
    head = json.dumps({"format": "rlmweb.trajectory/1", "shared": True, "run": shared_summary(run, documents)})
    yield head[:-1] + ', "events": ['
    first = True
    for page in run_selectors.run_events_between(run.pk, 0):
        for event in page:
            yield ("" if first else ",\n") + json.dumps(services.shared_event(event))
            first = False
    yield "]}\n"


@require_GET
def share_trajectory(request, token: str):
    link, refusal = _active_link(request, token, as_json=True)
    if refusal is not None:
        return refusal
    response = StreamingHttpResponse(
        _trajectory_chunks(link.run, _shared_documents(link, token)), content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="rlmweb-shared-run-{link.run_id}.json"'
    return _private(response)


@require_GET
def share_document_text(request, token: str, position: int):
    """The extracted text of the run's document at `position`, only on links that allow it."""
    link, refusal = _active_link(request, token, as_json=True)
    if refusal is not None:
        return refusal
    documents = run_selectors.run_documents(link.run)
    if not link.show_document_text or position >= len(documents):
        raise Http404("No such document text.")
    document = documents[position]
    if not document.text_file or not document.text_path.is_file():
        raise Http404("This document has no extracted text.")
    text = document.text_path.open("rb")  # noqa: SIM115 (FileResponse closes it)
    response = FileResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = "inline"
    return _private(response)


# --- the run's share panel (signed-in team members) -------------------------------------------------

def _run_or_404(request, run_id) -> Run:
    run = run_selectors.run_get_for_user(request.user, run_id)
    if run is None:
        raise Http404("No such run.")
    return run


def _expiry_days(raw: str | None) -> int | None:
    if raw is None or raw in ("", "never"):
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValidationError("Choose when the link expires.") from None


@login_required
@require_GET
def share_manage(request, run_id):
    """The run's share links on a page of their own (the same panel the run page includes)."""
    run = _run_or_404(request, run_id)
    if not services.can_share(request.user, run):
        raise PermissionDenied("Only the run's creator or the team's admins can share it by link.")
    return render(request, "sharing/share_manage.html", {"run": run})


@login_required
@require_POST
def share_create(request, run_id):
    """Create a link from the panel's form and show it once."""
    run = _run_or_404(request, run_id)
    try:
        link, raw = services.share_create(
            request.user, run, expires_in_days=_expiry_days(request.POST.get("expires_in_days")),
            show_document_text=request.POST.get("show_document_text") in ("on", "true", "1"),
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("run_detail", run_id=run.pk)
    url = request.build_absolute_uri(reverse("share_page", args=[raw]))
    return render(request, "sharing/share_created.html", {"run": run, "link": link, "url": url}, status=201)


@login_required
@require_POST
def share_revoke(request, link_id):
    link = services.share_link_for_user(request.user, link_id)
    if link is None:
        raise Http404("No such share link.")
    services.share_revoke(request.user, link)
    messages.success(request, "Share link revoked: it no longer opens the run.")
    target = request.POST.get("next", "")
    if target == reverse("share_manage", args=[link.run_id]):
        return redirect(target)
    return redirect("run_detail", run_id=link.run_id)
