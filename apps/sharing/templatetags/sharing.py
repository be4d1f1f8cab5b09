from django import template

from apps.sharing import services

register = template.Library()


@register.simple_tag(takes_context=True)
def share_panel_state(context, run) -> dict:
    """For `_share_panel.html`: whether the viewer may share `run`, and its links if so."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or getattr(run, "team_id", None) is None or not services.can_share(user, run):
        return {"can_share": False, "links": []}
    return {"can_share": True, "links": list(services.share_links_for_run(run))}
