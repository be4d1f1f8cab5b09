from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "apps.runs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The sandbox check registers itself; a run's snapshot file is deleted with the run.
        from . import checks, conversations  # noqa: F401
