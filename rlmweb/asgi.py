"""ASGI entry point: HTTP goes to Django, websockets to the Channels routes of each app."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rlmweb.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from apps.evals.routing import websocket_urlpatterns as evals_ws_patterns  # noqa: E402
from apps.runs.routing import websocket_urlpatterns  # noqa: E402
from apps.sharing.routing import websocket_urlpatterns as sharing_ws_patterns  # noqa: E402
from rlmweb import log_redaction  # noqa: E402
from rlmweb.heap import freeze_startup_heap  # noqa: E402
from rlmweb.origins import SameOriginValidator  # noqa: E402

log_redaction.install()  # the server configured its loggers before importing this module

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns + sharing_ws_patterns + evals_ws_patterns))
        ),
    }
)

# Import every view now (Django would on the first request), then keep the collector off it all.
import rlmweb.urls  # noqa: E402, F401

freeze_startup_heap()
