from django import template
from django.urls import reverse

from apps.review import selectors
from apps.review.models import PATTERN_LABELS

register = template.Library()


@register.simple_tag(takes_context=True)
def feedback_state(context, run) -> dict:
    """What the feedback box shows: counts, the viewer's own verdict, where to post."""
    user = context.get("user") or getattr(context.get("request"), "user", None)
    mine = selectors.feedback_of(user, run) if user is not None else None
    return {
        "counts": selectors.feedback_counts(run),
        "mine": mine,
        "action": reverse("run_feedback", args=[run.pk]),
    }


@register.filter
def pattern_label(name: str) -> str:
    return PATTERN_LABELS.get(name, name)
