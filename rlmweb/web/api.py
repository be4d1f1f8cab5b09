"""JSON API plumbing shared by every app: token authentication, the CSRF rule for sessions, the JSON
body parser and query parameters. Errors are `rlmweb.web.errors`
ServiceErrors, answered as JSON by `api_view`."""

import functools
import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponseBase
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.accounts.models import ApiToken, hash_token
from apps.accounts.requests import ApiRequest

from .errors import (
    TRANSLATED,
    Forbidden,
    Invalid,
    Unauthenticated,
    error_response,
    json_error,
    translated,
)


def user_from_token(request: HttpRequest) -> User | None:
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, raw = header.partition(" ")
    if scheme.lower() not in {"token", "bearer"} or not raw.strip():
        raise Unauthenticated("Malformed Authorization header; use 'Authorization: Token <token>'.")
    token = ApiToken.objects.select_related("user").filter(token_hash=hash_token(raw.strip())).first()
    if token is None or not token.user.is_active:
        raise Unauthenticated("Invalid API token.")
    if token.expired:
        raise Unauthenticated(f"This API token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC; create a new one.")
    if token.read_only and request.method not in ("GET", "HEAD", "OPTIONS"):
        raise Forbidden("This API token is read-only; use a read-write token to change anything.")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
    return token.user


def api_view(methods: tuple[str, ...], csrf_in_view: bool = False) -> Callable:
    """Authenticate by token (or session), enforce methods, turn service errors into JSON.

    Token requests are CSRF-exempt (no cookies involved); session requests keep CSRF checks.
    Django's CSRF check reads a POST body (for the form field) before the header, so a view taking
    large multipart bodies says `csrf_in_view=True` and calls `require_csrf` itself, after the checks
    that need no body (role, rate limit, quota): a refused upload is then refused before it is read.
    """

    def decorator(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(request: ApiRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if request.method not in methods:
                return error_response(405, f"Method {request.method} not allowed; use {', '.join(methods)}.")
            try:
                token_user = user_from_token(request)
                request.authenticated_by_token = token_user is not None
                if token_user is not None:
                    request.user = token_user
                elif not request.user.is_authenticated:
                    raise Unauthenticated("Authentication required: send 'Authorization: Token <token>'.")
                elif not csrf_in_view:
                    require_csrf(request)
                return view(request, *args, **kwargs)
            except TRANSLATED as exc:
                return json_error(translated(exc))

        return csrf_exempt(wrapper)

    return decorator


def require_csrf(request: ApiRequest) -> None:
    """Forbidden (403) for a session-authenticated, state-changing request failing the CSRF check."""
    if request.authenticated_by_token or request.method in ("GET", "HEAD", "OPTIONS"):
        return
    if not _csrf_ok(request):
        raise Forbidden("CSRF check failed for a session-authenticated request.")


def _csrf_ok(request: HttpRequest) -> bool:
    from django.middleware.csrf import CsrfViewMiddleware

    # Only the middleware's verdict is asked for: neither callable is ever called.
    reason = CsrfViewMiddleware(lambda r: None).process_view(request, None, (), {})  # type: ignore[arg-type]
    return reason is None


# No request of the API needs more: a question is at most a few KB, a JSON upload start a few hundred
# bytes. Deeper or larger input is refused before it can cost recursion or memory.
JSON_MAX_BYTES = 1024 * 1024
JSON_MAX_DEPTH = 32


class MalformedJson(ValueError):
    """The text is not JSON this server accepts; the message says why, for the client."""


def parse_json(raw: bytes | str, max_bytes: int = JSON_MAX_BYTES) -> object:
    """JSON text as Python values, refusing (MalformedJson) what is invalid, too large or too deep."""
    if len(raw) > max_bytes:
        raise MalformedJson(f"The JSON is too large: at most {max_bytes:,} bytes.")
    try:
        value = json.loads(raw)
    except RecursionError:
        raise MalformedJson(f"The JSON is nested too deeply: at most {JSON_MAX_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedJson(f"The body is not valid JSON: {exc}") from None
    if _depth_over(value, JSON_MAX_DEPTH):
        raise MalformedJson(f"The JSON is nested too deeply: at most {JSON_MAX_DEPTH} levels.")
    return value


def _depth_over(value: object, limit: int) -> bool:
    """Whether containers nest more than `limit` deep (iteratively: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def json_body(request: HttpRequest) -> dict:
    """The request's JSON object; Invalid (400) for anything malformed, too deep or too large.

    Every view that reads a JSON body goes through here, so each refuses bad input the same way."""
    try:
        raw = request.body or b"{}"
    except RequestDataTooBig:
        raise Invalid(f"The JSON is too large: at most {JSON_MAX_BYTES:,} bytes.") from None
    try:
        body = parse_json(raw)
    except MalformedJson as exc:
        raise Invalid(str(exc)) from None
    if not isinstance(body, dict):
        raise Invalid("Request body must be a JSON object.")
    return body


def int_param(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    """The integer query parameter `name` (`default` when absent or empty); Invalid (400, with
    `fields`) when it is not an integer or outside [low, high]: a bad value is refused, not guessed."""
    raw = request.GET.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Invalid(f"{name} must be an integer.", fields={name: ["Must be an integer."]}) from None
    if not low <= value <= high:
        raise Invalid(f"{name} must be between {low} and {high}.", fields={name: [f"Between {low} and {high}."]})
    return value


__all__ = ["MalformedJson", "api_view", "error_response", "int_param", "json_body", "parse_json", "require_csrf",
           "get_user_model"]
