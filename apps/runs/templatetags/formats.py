"""Template filters for apps/runs/formats.py: `{% load formats %}` then `{{ x|usd }}`, `{{ n|size }}`,
`{{ n|thousands }}`; and `{{ run|seems_lost }}` (selectors.run_seems_lost)."""

from django import template

from apps.runs import formats, selectors

register = template.Library()
register.filter("usd", formats.usd)
register.filter("size", formats.size)
register.filter("thousands", formats.thousands)
register.filter("seems_lost", selectors.run_seems_lost)
