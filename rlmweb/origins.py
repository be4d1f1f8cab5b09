"""Websocket origin check by scheme, host and port.

Channels' AllowedHostsOriginValidator compares only the Origin's host with ALLOWED_HOSTS, so a page
on another port of the same host (127.0.0.1:8202 against a server on 8201) could open a socket
with the victim's cookies. A websocket is accepted only when its Origin is the server's own
origin, as the request reached it (Host header, wss → https), or one of CSRF_TRUSTED_ORIGINS (a
proxy that changes the Host), and the Host is one of ALLOWED_HOSTS.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) with the default port made explicit, or None when malformed."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port or DEFAULT_PORTS[parts.scheme]


def _parse(origin: str) -> tuple[str, str, int] | None:
    scheme, _, rest = origin.partition("://")
    return _origin(scheme.lower(), rest) if rest and "/" not in rest else None


def origin_allowed(scope: dict) -> bool:
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    host = headers.get(b"host", b"").decode("latin-1").strip()
    domain, _ = split_domain_port(host)
    allowed_hosts = settings.ALLOWED_HOSTS or (["localhost", "127.0.0.1", "[::1]"] if settings.DEBUG else [])
    if not origin or not domain or not validate_host(domain, allowed_hosts):
        return False
    own_scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    allowed = {_origin(own_scheme, host)} | {_parse(o) for o in settings.CSRF_TRUSTED_ORIGINS if "*" not in o}
    allowed.discard(None)
    return _parse(origin) in allowed


class SameOriginValidator:
    """ASGI middleware: refuse (403 at the handshake) websockets whose Origin is not this site."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
