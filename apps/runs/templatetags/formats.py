"""Template filters for apps/runs/formats.py: `{% load formats %}` then `{{ x|usd }}`, `{{ n|size }}`,
`{{ n|thousands }}`."""

from django import template

from apps.runs import formats

register = template.Library()
register.filter("usd", formats.usd)
register.filter("size", formats.size)
register.filter("thousands", formats.thousands)
