from django import forms

from apps.teams.models import Team


class ImportForm(forms.Form):
    file = forms.FileField(help_text="A JSONL export of runs (from the queue, the admin or review_export).")
    team = forms.ModelChoiceField(queryset=Team.objects.order_by("name"), help_text="The team that gets the runs.")
