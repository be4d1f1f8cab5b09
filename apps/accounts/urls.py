from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import views
from .forms import LoginForm
from .throttle import answer_429

urlpatterns = [
    path("login/", answer_429(auth_views.LoginView.as_view(authentication_form=LoginForm)), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("password/", auth_views.PasswordChangeView.as_view(
        template_name="registration/password_change.html", success_url=reverse_lazy("password_change_done"),
    ), name="password_change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name="registration/password_change_done.html",
    ), name="password_change_done"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/new/", views.token_create, name="token_create"),
    path("tokens/<int:token_id>/delete/", views.token_delete, name="token_delete"),
]
