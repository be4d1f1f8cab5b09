from django import template

register = template.Library()


@register.filter
def thousands(value: int | None) -> str:
    """1234567 → "1,234,567" (the page's script formats live updates the same way)."""
    return f"{value or 0:,}"
