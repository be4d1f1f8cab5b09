"""Settings behaviour that users rely on: the deploy check and the rate limiter."""

import os
import subprocess
import sys

import pytest
from django.core.cache import cache

from rlmweb.web.ratelimit import RateLimited, rate_limit_hit
from tests.helpers import REPO


def test_production_profile_passes_the_deploy_check():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}  # set by browser tests
    env.update(
        RLMWEB_SECRET_KEY="k" * 20 + "x7#Qz!p2@Lm9$Rt4^Wv6&Yb8*Nc1(Hd3)Jf5",
        DATABASE_URL="postgres://rlmweb@127.0.0.1:1/rlmweb",
        REDIS_URL="redis://127.0.0.1:1/0",
        RLMWEB_ALLOWED_HOSTS="rlm.example.com",
        RLMWEB_DEBUG="",
    )
    out = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no issues" in out.stdout


def test_production_profile_refuses_to_start_without_a_secret_key():
    env = dict(os.environ, DATABASE_URL="postgres://rlmweb@127.0.0.1:1/rlmweb", RLMWEB_SECRET_KEY="", RLMWEB_DEBUG="")
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0
    assert "Set RLMWEB_SECRET_KEY" in out.stderr


def test_rate_limit_counts_per_user_and_says_when_to_retry(settings):
    settings.RATE_LIMITS = {"ask": (3, 60)}
    cache.clear()
    for _ in range(3):
        rate_limit_hit(1, "ask")
    rate_limit_hit(2, "ask")  # another user has their own budget
    with pytest.raises(RateLimited) as exc:
        rate_limit_hit(1, "ask")
    assert "at most 3 per 60 s" in exc.value.message
    assert 0 < exc.value.retry_after <= 60


def settings_value(expression: str, **env_overrides) -> str:
    """`expression` evaluated in a fresh process's settings, with the environment changed as given."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "RLMWEB_DEBUG"}}
    env.update(env_overrides)
    code = f"import django; django.setup(); from django.conf import settings; print({expression})"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**env, "DJANGO_SETTINGS_MODULE": "rlmweb.settings"},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def test_debug_is_off_unless_asked_for_in_the_embedded_profile_too():
    assert settings_value("settings.PROFILE, settings.DEBUG") == "embedded False"
    assert settings_value("settings.DEBUG", RLMWEB_DEBUG="1") == "True"


def test_static_files_are_served_with_debug_off(client, settings):
    assert not settings.DEBUG
    response = client.get("/static/js/upload.js")
    assert response.status_code == 200
    assert b"".join(response.streaming_content if response.streaming else [response.content])


def test_a_404_does_not_list_the_url_patterns(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"admin/" not in response.content and b"api/runs/" not in response.content


def test_the_development_key_is_refused_in_production_even_when_given_explicitly():
    from django.conf import settings as django_settings

    env = dict(os.environ, DATABASE_URL="postgres://rlmweb@127.0.0.1:1/rlmweb", RLMWEB_DEBUG="1",
               RLMWEB_SECRET_KEY=django_settings.DEVELOPMENT_SECRET_KEY)
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode != 0 and "the development key is refused" in out.stderr


def test_the_deploy_check_flags_the_development_key():
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "RLMWEB_SECRET_KEY"}}
    out = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert "security.W009" in out.stdout + out.stderr


def test_every_response_carries_a_strict_content_security_policy(client):
    policy = client.get("/accounts/login/").headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'" and "unsafe" not in directives["script-src"]
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert client.get("/no/such/page/").headers["Content-Security-Policy"] == policy


def test_no_template_has_inline_scripts_or_event_handler_attributes():
    """The policy forbids them, so any left would silently stop working in the browser. Every
    script is an ES module (static/ has one dialect; eslint checks it as modules)."""
    import re

    templates = list((REPO / "templates").rglob("*.html"))
    assert templates
    for path in templates:
        text = path.read_text()
        inline = [m for m in re.finditer(r"<script\b([^>]*)>", text) if "src=" not in m.group(1)
                  and "application/json" not in m.group(1)]
        assert not inline, f"inline <script> in {path}"
        assert not re.search(r"\son[a-z]+\s*=", text), f"on…= attribute in {path}"
        classic = [m.group(0) for m in re.finditer(r"<script\b([^>]*)>", text)
                   if "src=" in m.group(1) and 'type="module"' not in m.group(1)]
        assert not classic, f"a script in {path} is not an ES module: {classic}"
