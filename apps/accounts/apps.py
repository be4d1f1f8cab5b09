from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib import admin

        from .forms import AdminLoginForm
        from .throttle import answer_429

        admin.site.login_form = AdminLoginForm  # /admin/login/ says when a throttled sign-in may retry
        admin.site.login = answer_429(admin.site.login)  # type: ignore[method-assign]  # wraps the bound view
