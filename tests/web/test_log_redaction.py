"""Share-link and invite tokens never appear in the logs: access log lines and Django's own."""

import logging

import pytest

import rlmweb.asgi  # noqa: F401  (installs the filters on the server's loggers, as serving does)
from rlmweb.log_redaction import redact

TOKEN = "Zq3xV9-secret-share-token_AbC"


@pytest.mark.parametrize(("path", "shown"), [
    (f"/s/{TOKEN}/", "/s/[redacted]/"),
    (f"/s/{TOKEN}/documents/1/text", "/s/[redacted]/documents/1/text"),
    (f"/ws/share/{TOKEN}/?since=4", "/ws/share/[redacted]/?since=4"),
    (f"/teams/join/{TOKEN}/", "/teams/join/[redacted]/"),
    ("/s/runs/8c1e3b1a-0000-4000-8000-000000000000/", "/s/runs/8c1e3b1a-0000-4000-8000-000000000000/"),
    ("/runs/8c1e3b1a-0000-4000-8000-000000000000/", "/runs/8c1e3b1a-0000-4000-8000-000000000000/"),
])
def test_token_segments_are_redacted_and_nothing_else(path, shown):
    assert redact(path) == shown


def test_the_access_log_line_of_a_share_link_hides_its_token(caplog):
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5555", "GET", f"/s/{TOKEN}/events.json", "1.1", 200)
    assert "/s/[redacted]/events.json" in caplog.text and TOKEN not in caplog.text


@pytest.mark.django_db
def test_djangos_not_found_warning_hides_the_token(client, caplog):
    with caplog.at_level(logging.WARNING, logger="django.request"):
        assert client.get(f"/teams/join/{TOKEN}/").status_code in (302, 404)
        assert client.get(f"/s/{TOKEN}/").status_code == 404
    assert "Not Found: /s/[redacted]/" in caplog.text and TOKEN not in caplog.text
