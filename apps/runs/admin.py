from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path

from worker.sandbox import degraded_allowed, missing_layers, probe_protections
from worker.sandbox.host import ALLOW_DEGRADED_ENV

from . import services
from .models import Run, RunDocument, RunEvent


class RunDocumentInline(admin.TabularInline):
    model = RunDocument
    extra = 0
    raw_id_fields = ("document",)


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ("question", "team", "created_by", "status", "mode", "root_model", "iterations", "subcalls",
                    "cost_usd", "created_at")
    list_filter = ("status", "mode")
    search_fields = ("question", "final_answer")
    readonly_fields = ("id", "last_seq", "task_id", "worker", "created_at", "started_at", "finished_at",
                       "heartbeat_at")
    raw_id_fields = ("team", "created_by", "rerun_of")
    inlines = [RunDocumentInline]
    actions = ["cancel_runs"]

    def get_urls(self):
        view = self.admin_site.admin_view(self.sandbox_view)
        return [path("sandbox/", view, name="runs_run_sandbox"), *super().get_urls()]

    def sandbox_view(self, request):
        """Each isolation layer of the REPL sandbox on this host, as a fresh probe sees it."""
        try:
            protections, error = probe_protections(), None
        except Exception as exc:
            protections, error = {}, f"{type(exc).__name__}: {exc}"
        missing = missing_layers(protections) if protections else {}
        layers = [(name, state, name not in missing) for name, state in sorted(protections.items())]
        context = {**self.admin_site.each_context(request), "opts": self.model._meta, "layers": layers,
                   "error": error, "missing": missing, "degraded": degraded_allowed(),
                   "degraded_env": ALLOW_DEGRADED_ENV, "title": "Sandbox isolation on this host"}
        return TemplateResponse(request, "admin/runs/run/sandbox.html", context)

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        done = 0
        for run in queryset:
            try:
                services.run_cancel(request.user, run)
                done += 1
            except (services.RunConflict, services.RunNotFound, PermissionDenied) as exc:
                self.message_user(request, f"{run.pk}: {exc}", messages.WARNING)
        self.message_user(request, f"Cancelled or asked to stop {done} run(s).")


@admin.register(RunEvent)
class RunEventAdmin(admin.ModelAdmin):
    list_display = ("run", "seq", "type", "ts")
    list_filter = ("type",)
    raw_id_fields = ("run",)
