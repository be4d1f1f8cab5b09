from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "apps.runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The sandbox check registers itself; a run's snapshot file is deleted with the run; the
        # receivers of teams' and documents' hooks (apps.runs.receivers).
        from . import checks, conversations, receivers  # noqa: F401
