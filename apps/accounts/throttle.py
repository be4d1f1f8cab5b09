"""Sign-in throttling: per account and per client address, exponential lockout, in the Django cache.

After LOGIN_FREE_FAILURES failed sign-ins for one username (or LOGIN_FREE_FAILURES_PER_ADDRESS from
one address), each further failure locks it for LOGIN_LOCKOUT_BASE_S × 2^(extra failures), at most
LOGIN_LOCKOUT_MAX_S. While locked, no password is even checked, the right one included: a flood
learns nothing. A success clears the account's count, never the address's (an attacker could
otherwise sign in to their own account between guesses). Counts are forgotten a day after the
last failure.

`ThrottledModelBackend` enforces it for every `authenticate()` (login page, /admin/login/, any
future password endpoint); the sign-in forms check first so they can say when to retry.
"""

import hashlib
import math
import time

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

FORGET_AFTER_S = 24 * 3600


def _now() -> float:
    return time.time()


def _keys(request: HttpRequest | None, username: str | None) -> list[tuple[str, int]]:
    """(cache key, free failures) of the account and of the client address."""
    keys = []
    if username:
        digest = hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]
        keys.append((f"login-fail:account:{digest}", settings.LOGIN_FREE_FAILURES))
    address = request.META.get("REMOTE_ADDR") if request is not None else None
    if address:
        keys.append((f"login-fail:address:{address}", settings.LOGIN_FREE_FAILURES_PER_ADDRESS))
    return keys


def retry_after(request: HttpRequest | None, username: str | None) -> int:
    """Seconds until a sign-in as `username` from this client may be tried again (0: now)."""
    now = _now()
    waits = [(cache.get(key) or {}).get("locked_until", 0) - now for key, _ in _keys(request, username)]
    return max(0, math.ceil(max(waits, default=0)))


def record_failure(request: HttpRequest | None, username: str | None) -> None:
    now = _now()
    for key, free in _keys(request, username):
        state = cache.get(key) or {"failures": 0, "locked_until": 0}
        state["failures"] += 1
        extra = state["failures"] - free
        if extra >= 0:
            lockout = min(settings.LOGIN_LOCKOUT_MAX_S, settings.LOGIN_LOCKOUT_BASE_S * 2 ** min(extra, 30))
            state["locked_until"] = now + lockout
        cache.set(key, state, timeout=FORGET_AFTER_S)


def record_success(request: HttpRequest | None, username: str | None) -> None:
    account = _keys(None, username)
    if account:
        cache.delete(account[0][0])


def locked_message(seconds: int) -> str:
    return (f"Too many failed sign-ins for this account or from this address. "
            f"Try again in {seconds} second{'s' if seconds != 1 else ''}.")


class ThrottledModelBackend(ModelBackend):
    """Django's ModelBackend behind the sign-in throttle."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(self._username_field())
        if retry_after(request, username):
            raise PermissionDenied("sign-in throttled")  # authenticate() stops here: no password checked
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            record_failure(request, username)
        else:
            record_success(request, username)
        return user

    @staticmethod
    def _username_field() -> str:
        from django.contrib.auth import get_user_model

        return get_user_model().USERNAME_FIELD


def answer_429(view):
    """Wrap a sign-in view: a page refusing a throttled sign-in answers 429 with Retry-After."""
    import functools

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        form = (getattr(response, "context_data", None) or {}).get("form")
        wait = getattr(form, "retry_after", 0)
        if wait:
            response.status_code = 429
            response["Retry-After"] = str(wait)
        return response

    return wrapper
