"""One error model for every app, and the one translator from it to HTTP.

Services raise a `ServiceError` subclass saying *what* went wrong (not found, not allowed, invalid,
conflict, too large, rate limited); they never pick an HTTP status. The translator turns such an
error into a response, the same way for every app:

- the JSON API (`rlmweb.web.api.api_view`, and `json_errors` for JSON views without a token):
  `{"error": message, **extra}` with the kind's status (`extra` carries e.g. `fields`,
  `retry_after`, `offset`);
- pages (`ServiceErrorMiddleware`): a not-found is the 404 page, a refusal the 403 page; any other
  error is put as a message on the page the browser came from (a redirect back to it, same site
  only), else shown on the error page with its status.

Django's own `ValidationError` (field errors from forms and model-level rules), `PermissionDenied`
and `Http404` are accepted too, and translated as Invalid (RateLimited for a ValidationError with code "busy"), Forbidden and NotFound
(`as_service_error`), so a service may keep raising them where that is the natural thing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ClassVar

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.handlers.exception import response_for_exception
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme


class ServiceError(Exception):
    """A request that cannot be honoured; `message` is for the user, `extra` goes into JSON bodies."""

    status: ClassVar[int] = 400  # the HTTP status the translator answers with, per kind

    def __init__(self, message: str, **extra: object) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class Invalid(ServiceError):
    """The input is wrong (`fields={name: [messages]}` says where)."""

    status = 400


class Unauthenticated(ServiceError):
    status = 401


class Forbidden(ServiceError):
    """The user may see the thing but their role does not allow the action."""

    status = 403


class NotFound(ServiceError):
    """No such thing for this user (other teams' objects are reported the same way)."""

    status = 404


class Conflict(ServiceError):
    """The thing is in a state that does not allow the action (a running run, a complete upload)."""

    status = 409


class TooLarge(ServiceError):
    """Over a size limit or a storage quota."""

    status = 413


class RateLimited(ServiceError):
    """Too many requests, or too much at once; `retry_after` (seconds) when known."""

    status = 429

    @property
    def retry_after(self) -> object:
        return self.extra.get("retry_after")


def as_service_error(exc: Exception) -> ServiceError | None:
    """The service error `exc` stands for (Django's own exceptions included), or None."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return Invalid("Invalid request.", fields=exc.message_dict)
        if exc.code == "busy":  # too much at once (e.g. a team's concurrent runs)
            return RateLimited(" ".join(exc.messages))
        return Invalid(" ".join(exc.messages))
    if isinstance(exc, PermissionDenied):
        return Forbidden(str(exc) or "You are not allowed to do this.")
    if isinstance(exc, Http404):
        return NotFound(str(exc) or "Not found.")
    return None


def error_response(status: int, message: str, **extra: object) -> JsonResponse:
    return JsonResponse({"error": message, **extra}, status=status)


def json_error(exc: ServiceError) -> JsonResponse:
    """The API's answer to a service error: `{"error": message, **extra}` with its kind's status."""
    response = error_response(exc.status, exc.message, **exc.extra)
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        response["Retry-After"] = str(exc.retry_after)
    return response


TRANSLATED = (ServiceError, ValidationError, PermissionDenied, Http404)


def translated(exc: Exception) -> ServiceError:
    """`as_service_error` of one of the TRANSLATED exceptions (each has its service error)."""
    error = as_service_error(exc)
    assert error is not None, f"{type(exc).__name__} is not one of the translated exceptions"
    return error


def json_errors(view: Callable) -> Callable:
    """Translate the service errors of a JSON view (one without token authentication) to JSON."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except TRANSLATED as exc:
            return json_error(translated(exc))

    return wrapper


def page_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
    """A page's answer to a service error (see the module docstring)."""
    if isinstance(exc, NotFound):
        return response_for_exception(request, Http404(exc.message))
    if isinstance(exc, Forbidden | Unauthenticated):
        return response_for_exception(request, PermissionDenied(exc.message))
    back = request.headers.get("Referer", "")
    if request.method == "POST" and back and url_has_allowed_host_and_scheme(
            back, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        messages.error(request, exc.message)
        return redirect(back)
    return render(request, "error.html", {"message": exc.message, "status": exc.status}, status=exc.status)


class ServiceErrorMiddleware:
    """Pages: a ServiceError a view lets through becomes `page_error` (Django's own exceptions keep
    Django's handling: 404 and 403 pages, and a ValidationError is a bug of the view)."""

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if isinstance(exc, ServiceError):
            return page_error(request, exc)
        return None
