from django import forms
from django.conf import settings

from apps.documents.models import DocumentStatus
from apps.runs.models import Mode
from apps.runs.models_config import model_choices

from .generators import SUITES
from .scorers import SCORERS

SUITE_CHOICES = [(s, s) for s in SUITES] + [("file", "file: my own questions (JSONL or CSV)")]


class EvaluationForm(forms.Form):
    """The new-evaluation form. It checks shapes; `services.evaluation_create` checks the rest."""

    name = forms.CharField(required=False, max_length=200)
    suite = forms.ChoiceField(choices=SUITE_CHOICES, initial="niah")
    question_file = forms.FileField(required=False, help_text="For the file suite: JSONL or CSV (see the docs).")
    documents = forms.MultipleChoiceField(required=False, widget=forms.CheckboxSelectMultiple,
                                          help_text="niah: the haystack; file: the documents the questions are about.")
    models = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple)
    modes = forms.MultipleChoiceField(choices=Mode.choices, widget=forms.CheckboxSelectMultiple, initial=[Mode.RLM])
    sizes = forms.CharField(initial="100000", help_text="Context sizes in characters, comma-separated.")
    depths = forms.CharField(required=False, help_text="niah: needle depths in turn, 0 (start) to 1 (end), "
                             "comma-separated; blank: spread evenly.")
    cases = forms.IntegerField(min_value=1, max_value=1000, initial=5, help_text="Questions per size.")
    seed = forms.IntegerField(initial=0)
    max_cost_usd = forms.FloatField(required=False, min_value=0.000001, label="Cost cap (USD)")
    concurrency = forms.IntegerField(min_value=1, initial=2)
    scorer = forms.ChoiceField(choices=[("", "the suite's own")] + [(s, s) for s in SCORERS], required=False)
    sub_model = forms.ChoiceField(required=False, help_text="The model of the sub-calls; blank: each root model.")
    judge_model = forms.ChoiceField(required=False)

    def __init__(self, *args, team, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        documents = team.documents.filter(status=DocumentStatus.READY).order_by("name")
        self.fields["documents"].choices = [(str(d.pk), d.name) for d in documents]  # type: ignore[attr-defined]  # (a ChoiceField)
        available = [(m.model, m.label) for m in model_choices() if m.available]
        self.fields["models"].choices = available  # type: ignore[attr-defined]  # (a ChoiceField)
        self.fields["models"].initial = [settings.DEFAULT_ROOT_MODEL]
        self.fields["judge_model"].choices = [("", "none")] + available  # type: ignore[attr-defined]  # (a ChoiceField)
        self.fields["sub_model"].choices = [("", "same as the root model")] + available  # type: ignore[attr-defined]  # (a ChoiceField)
        self.fields["concurrency"].max_value = settings.MAX_CONCURRENT_RUNS_PER_TEAM  # type: ignore[attr-defined]  # (an IntegerField)

    def clean_sizes(self) -> list[int]:
        try:
            return [int(s.strip().replace("_", "")) for s in self.cleaned_data["sizes"].split(",") if s.strip()]
        except ValueError:
            raise forms.ValidationError("Whole numbers separated by commas, e.g. 100000,1000000.") from None

    def clean_depths(self) -> list[float]:
        try:
            return [float(d) for d in self.cleaned_data["depths"].split(",") if d.strip()]
        except ValueError:
            raise forms.ValidationError("Numbers between 0 and 1 separated by commas, e.g. 0,0.5,1.") from None

    def add_service_errors(self, exc) -> None:
        for field, messages in exc.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)
