from collections.abc import Callable

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.documents.models import DocumentStatus
from rlmweb.web.errors import ServiceError

from .models import Mode
from .models_config import model_choices
from .services import LIMITS, MAX_QUESTION_CHARS

MODE_HELP = {
    Mode.RLM: "The root model works the documents from a Python REPL and hands slices to sub-calls. "
    "Best for questions that need much of the text.",
    Mode.RLM_NO_SUBCALLS: "The REPL only (regex, slicing, counting), no sub-calls. Often enough, and cheaper, "
    "for finding a fact stated once.",
    Mode.DIRECT: "The whole text in one call to the root model, as a baseline. Refused when the text is larger "
    "than the model's window.",
}
LIMIT_LABELS = {
    "max_iterations": "Max root iterations",
    "max_depth": "Max depth",
    "max_subcalls": "Max sub-calls",
    "max_cost_usd": "Cost cap (USD)",
    "max_wall_s": "Max wall time (s)",
}
LIMIT_HELP = {
    "max_depth": "1 = sub-calls are plain model calls (as in the paper); 2–5 = rlm_query starts child RLMs.",
    "max_cost_usd": "The run stops when its known cost passes this.",
}


class RunForm(forms.Form):
    """The ask form. It checks shapes; `services.run_create` checks everything else."""

    documents = forms.MultipleChoiceField(widget=forms.CheckboxSelectMultiple, error_messages={
        "required": "Pick at least one document.",
        "invalid_choice": "%(value)s is not a ready document of this team.",
    })
    question = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=MAX_QUESTION_CHARS, strip=True)
    mode = forms.ChoiceField(choices=Mode.choices, widget=forms.RadioSelect, initial=Mode.RLM)
    root_model = forms.ChoiceField()
    sub_model = forms.ChoiceField()

    def __init__(self, *args, team, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.team_documents = list(team.documents.filter(status=DocumentStatus.READY).order_by("name"))
        self.fields["documents"].choices = [(str(d.pk), d.name) for d in self.team_documents]  # type: ignore[attr-defined]  # (a ChoiceField)
        self.models = model_choices()
        options = [(m.model, m.label) for m in self.models]
        self.fields["root_model"].choices = options  # type: ignore[attr-defined]  # (a ChoiceField)
        self.fields["sub_model"].choices = options  # type: ignore[attr-defined]  # (a ChoiceField)
        self.fields["root_model"].initial = settings.DEFAULT_ROOT_MODEL
        self.fields["sub_model"].initial = settings.DEFAULT_SUB_MODEL
        for name, (kind, low, high, default) in LIMITS.items():
            field_class: Callable[..., forms.Field] = forms.IntegerField if kind is int else forms.FloatField
            self.fields[name] = field_class(
                label=LIMIT_LABELS[name], min_value=low, max_value=high, initial=default,
                help_text=LIMIT_HELP.get(name, ""),
            )
        self.mode_help = MODE_HELP

    def limit_fields(self) -> list:
        return [self[name] for name in LIMITS]

    def selected_documents(self) -> set[str]:
        value = self["documents"].value() or []
        return {str(v) for v in value}

    def ask_arguments(self) -> dict:
        data = self.cleaned_data
        return {
            "question": data["question"],
            "document_ids": data["documents"],
            "mode": data["mode"],
            "root_model": data["root_model"],
            "sub_model": data["sub_model"],
            "limits": {name: data[name] for name in LIMITS if data.get(name) is not None},
        }

    def add_service_errors(self, error: ValidationError | ServiceError) -> None:
        """Show a service's field errors (`limits.max_depth` → the max_depth input) on the form."""
        if isinstance(error, ServiceError):
            self.add_error(None, error.message)
            return
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for key, messages in error.message_dict.items():
            field = key.removeprefix("limits.")
            self.add_error(field if field in self.fields else None, messages)
