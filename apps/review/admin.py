"""Review in the Django admin: find failed runs fast, open them in the explorer, label, assign, export."""

import json

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from apps.runs.models import Run

from . import selectors, services
from .classify import PATTERNS
from .export import ImportFailed, import_lines
from .forms import ImportForm
from .models import PATTERN_LABELS, Feedback, Label, Rating, ReviewState, RunReview
from .views import jsonl_response


class PatternFilter(admin.SimpleListFilter):
    title = "pattern"
    parameter_name = "pattern"

    def lookups(self, request, model_admin):
        return [(p, PATTERN_LABELS[p]) for p in PATTERNS]

    def queryset(self, request, queryset):
        if (value := self.value()) in PATTERNS:
            return queryset.filter(selectors.pattern_q(value))
        return queryset


class CostFilter(admin.SimpleListFilter):
    title = "cost"
    parameter_name = "cost"

    def lookups(self, request, model_admin):
        return [(key, label) for key, label, _, _ in selectors.COST_BUCKETS]

    def queryset(self, request, queryset):
        q = selectors.cost_q(self.value() or "")
        return queryset if q is None else queryset.filter(q)


class FeedbackFilter(admin.SimpleListFilter):
    title = "feedback"
    parameter_name = "feedback"

    def lookups(self, request, model_admin):
        return selectors.FEEDBACK_FILTERS

    def queryset(self, request, queryset):
        q = selectors.feedback_q(self.value() or "")
        return queryset if q is None else queryset.filter(q)


class ModelFilter(admin.SimpleListFilter):
    title = "root model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        return [(m, m) for m in selectors.model_choices()]

    def queryset(self, request, queryset):
        return queryset.filter(run__root_model=self.value()) if self.value() else queryset


def set_state_action(state: str, label: str):
    def action(modeladmin, request, queryset):
        done = services.reviews_set_state(queryset, state)
        modeladmin.message_user(request, f"Set {done} run(s) to {label}.")

    action.__name__ = f"set_state_{state}"
    return admin.action(description=f"Set state: {label}")(action)


@admin.register(Label)
class LabelAdmin(admin.ModelAdmin):
    list_display = ("name", "description", "runs")
    search_fields = ("name",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(run_count=Count("reviews"))

    @admin.display(ordering="run_count")
    def runs(self, obj):
        return obj.run_count


@admin.register(RunReview)
class RunReviewAdmin(admin.ModelAdmin):
    change_list_template = "review/admin/change_list.html"
    list_display = ("question", "explorer", "outcome", "pattern_list", "root_model", "mode", "team", "cost",
                    "feedback", "label_list", "state", "assignee", "created")
    list_editable = ("state", "assignee")
    list_filter = ("outcome", PatternFilter, ModelFilter, ("run__mode", admin.ChoicesFieldListFilter), "run__team",
                   CostFilter, ("run__created_at", admin.DateFieldListFilter), FeedbackFilter, "state", "labels",
                   "assignee")
    list_select_related = ("run", "run__team", "assignee")
    search_fields = ("run__question", "run__final_answer")
    filter_horizontal = ("labels",)
    readonly_fields = ("explorer", "question", "answer", "outcome", "pattern_list", "evidence", "classified_at",
                       "imported", "feedback_given")
    fields = ("explorer", "question", "answer", "outcome", "pattern_list", "evidence", "feedback_given",
              "classified_at", "imported", "state", "labels", "assignee", "notes")
    actions = ["assign_to_me", "unassign", "export_jsonl", "reclassify",
               *[set_state_action(value, label) for value, label in ReviewState.choices]]
    date_hierarchy = "run__created_at"

    def has_add_permission(self, request):
        return False  # reviews come from the classifier and from imports

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("labels").annotate(
            thumbs_up=Count("run__feedback", filter=Q(run__feedback__rating=Rating.UP), distinct=True),
            thumbs_down=Count("run__feedback", filter=Q(run__feedback__rating=Rating.DOWN), distinct=True),
        )

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "assignee":
            from django.contrib.auth import get_user_model

            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # columns ------------------------------------------------------------------------------------
    @admin.display(description="question", ordering="run__question")
    def question(self, obj):
        return obj.run.question[:120]

    @admin.display(description="answer")
    def answer(self, obj):
        return obj.run.final_answer or "—"

    @admin.display(description="explorer")
    def explorer(self, obj):
        return format_html('<a href="{}">open run ↗</a>', reverse("run_detail", args=[obj.run_id]))

    @admin.display(description="patterns")
    def pattern_list(self, obj):
        return ", ".join(obj.pattern_labels) or "—"

    @admin.display(description="root model", ordering="run__root_model")
    def root_model(self, obj):
        return obj.run.root_model

    @admin.display(description="mode", ordering="run__mode")
    def mode(self, obj):
        return obj.run.mode

    @admin.display(description="team", ordering="run__team__name")
    def team(self, obj):
        return obj.run.team

    @admin.display(description="cost", ordering="run__cost_usd")
    def cost(self, obj):
        unknown = "+?" if obj.run.cost_unknown_calls else ""
        return f"${obj.run.cost_usd:.4f}{unknown}"

    @admin.display(description="feedback")
    def feedback(self, obj):
        return f"up {getattr(obj, 'thumbs_up', 0)} · down {getattr(obj, 'thumbs_down', 0)}"

    @admin.display(description="labels")
    def label_list(self, obj):
        return ", ".join(label.name for label in obj.labels.all()) or "—"

    @admin.display(description="created", ordering="run__created_at")
    def created(self, obj):
        return obj.run.created_at

    @admin.display(description="evidence")
    def evidence(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.details, indent=2, ensure_ascii=False))

    @admin.display(description="imported from")
    def imported(self, obj):
        if not obj.imported_from:
            return "—"
        return format_html("{} (original run {})", obj.imported_from.get("source") or "a file",
                           obj.imported_from.get("run_id") or "?")

    @admin.display(description="feedback given")
    def feedback_given(self, obj):
        items = Feedback.objects.filter(run_id=obj.run_id).select_related("user")
        return format_html_join(
            "", "<div>{} {}: {}</div>", ((("up" if f.rating > 0 else "down"), f.user, f.comment or "—") for f in items)
        ) or "—"

    # actions ------------------------------------------------------------------------------------
    def get_actions(self, request):
        """The static actions, plus one 'add label' and one 'remove label' action per label of the taxonomy."""
        actions = super().get_actions(request)
        for label in Label.objects.all():
            actions[f"add_label_{label.pk}"] = (
                self._label_action(label, add=True), f"add_label_{label.pk}", f"Label: {label.name}")
            actions[f"remove_label_{label.pk}"] = (
                self._label_action(label, add=False), f"remove_label_{label.pk}", f"Remove label: {label.name}")
        return actions

    @staticmethod
    def _label_action(label: Label, add: bool):
        def action(modeladmin, request, queryset):
            change = services.reviews_add_label if add else services.reviews_remove_label
            done = change(queryset, label)
            modeladmin.message_user(request, f"{'Labelled' if add else 'Unlabelled'} {done} run(s): {label.name}.")

        return action

    @admin.action(description="Assign to me")
    def assign_to_me(self, request, queryset):
        done = services.reviews_assign(queryset, request.user)
        self.message_user(request, f"Assigned {done} run(s) to you.")

    @admin.action(description="Unassign")
    def unassign(self, request, queryset):
        done = services.reviews_assign(queryset, None)
        self.message_user(request, f"Unassigned {done} run(s).")

    @admin.action(description="Export as JSONL")
    def export_jsonl(self, request, queryset):
        return jsonl_response(Run.objects.filter(review__in=queryset).order_by("created_at"))

    @admin.action(description="Re-classify")
    def reclassify(self, request, queryset):
        done = sum(services.review_classify(review.run) is not None for review in queryset.select_related("run"))
        self.message_user(request, f"Re-classified {done} run(s).")

    # import ---------------------------------------------------------------------------------------
    def get_urls(self):
        return [path("import/", self.admin_site.admin_view(self.import_view), name="review_runreview_import"),
                *super().get_urls()]

    def import_view(self, request):
        if not self.has_change_permission(request):
            return redirect("admin:index")
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                runs = import_lines(upload, form.cleaned_data["team"], request.user, source=upload.name)
            except ImportFailed as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"Imported {len(runs)} run(s).", messages.SUCCESS)
                return redirect(reverse("admin:review_runreview_changelist") + f"?run__team__id__exact="
                                f"{form.cleaned_data['team'].pk}")
        context = {**self.admin_site.each_context(request), "form": form, "opts": self.model._meta,
                   "title": "Import runs from JSONL"}
        return TemplateResponse(request, "review/admin/import.html", context)


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ("run", "user", "rating", "comment", "updated_at")
    list_filter = ("rating",)
    search_fields = ("comment", "run__question", "user__username")
    raw_id_fields = ("run", "user")
