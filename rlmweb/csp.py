"""The Content-Security-Policy header on every response.

Scripts come from this site's static files only: no inline `<script>` blocks or `on…=` attributes
(the templates load static/js files instead), no eval. Inline `style=` attributes are allowed:
they cannot run code. Websockets and fetches go to this site only; no page can be framed.
"""

from django.conf import settings


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response
