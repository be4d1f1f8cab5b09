from django.apps import AppConfig


class TeamsConfig(AppConfig):
    name = "apps.teams"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import signals  # noqa: F401
