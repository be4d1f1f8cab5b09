from django.apps import AppConfig


class HelpersConfig(AppConfig):
    name = "apps.helpers"
    default_auto_field = "django.db.models.BigAutoField"
