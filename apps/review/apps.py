from django.apps import AppConfig


class ReviewConfig(AppConfig):
    name = "apps.review"
    default_auto_field = "django.db.models.BigAutoField"
    verbose_name = "Review of runs"

    def ready(self) -> None:
        from . import receivers  # noqa: F401  a finished run is filed for review
