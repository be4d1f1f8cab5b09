"""Settings behaviour that users rely on: the deploy check and the rate limiter."""

import os
import subprocess
import sys

import pytest
from django.core.cache import cache

from apps.accounts.ratelimit import RateLimited, rate_limit_hit
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
    assert "at most 3 per 60 s" in exc.value.messages[0]
    assert 0 < exc.value.retry_after <= 60
