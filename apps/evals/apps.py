from django.apps import AppConfig


class EvalsConfig(AppConfig):
    name = "apps.evals"
    label = "evals"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The evals.case task registers with the worker; `manage.py rlm eval` with the rlm command.
        from . import cli, tasks  # noqa: F401
