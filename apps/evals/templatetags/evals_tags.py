from django import template

register = template.Library()


@register.filter
def pct(value) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


@register.filter
def ci(interval) -> str:
    return "—" if not interval else f"{100 * interval[0]:.0f}–{100 * interval[1]:.0f}%"


@register.filter
def usd(value) -> str:
    return "unknown" if value is None else f"${value:.4f}"


@register.filter
def seconds(value) -> str:
    return "—" if value is None else f"{value:.1f} s"


@register.filter
def chars(value) -> str:
    from apps.evals.charts import chars as fmt

    return fmt(value or 0)


@register.filter
def signed_pct(value) -> str:
    return "—" if value is None else f"{100 * value:+.0f} pts"
