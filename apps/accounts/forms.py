from typing import TYPE_CHECKING, Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from . import throttle


class SignupForm(UserCreationForm):
    class Meta:
        model = User
        fields = ["username", "email"]


if TYPE_CHECKING:
    _LoginFormBase = AuthenticationForm  # what the mixin is mixed into, for the type checker
else:
    _LoginFormBase = object


class ThrottledLoginMixin(_LoginFormBase):
    """Says when a throttled sign-in may be retried, instead of "wrong password"; `retry_after` is
    then set, for the view to answer 429 with a Retry-After header (`throttle.answer_429`)."""

    retry_after = 0

    def clean(self) -> dict[str, Any]:
        username = self.data.get("username")
        wait = throttle.retry_after(self.request, username)
        if wait:
            self.retry_after = wait
            raise ValidationError(throttle.locked_message(wait), code="throttled")
        try:
            return super().clean()
        except ValidationError:
            wait = throttle.retry_after(self.request, username)
            if wait:  # this failure started a lockout
                self.retry_after = wait
                raise ValidationError(throttle.locked_message(wait), code="throttled") from None
            raise


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    error_messages = {**AuthenticationForm.error_messages,
                      "invalid_login": "Your username and password didn't match. Please try again."}


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    pass
