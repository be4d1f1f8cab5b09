"""The sandbox's isolation layers are visible to operators: `manage.py check` and the admin."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.urls import reverse

from worker.sandbox.host import REPO_ROOT


@pytest.mark.django_db
def test_admin_shows_each_isolation_layer(admin_client):
    response = admin_client.get(reverse("admin:runs_run_sandbox"))
    assert response.status_code == 200
    rows = {name: (state, active) for name, state, active in response.context["layers"]}
    assert {"landlock", "seccomp", "rlimits", "no_new_privs"} <= set(rows)
    assert rows["landlock"][1] and rows["seccomp"][1]  # this machine has both
    assert b"Sandbox isolation on this host" in response.content
    changelist = admin_client.get(reverse("admin:runs_run_changelist"))
    assert reverse("admin:runs_run_sandbox").encode() in changelist.content


@pytest.mark.django_db
def test_the_sandbox_page_is_for_staff_only(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="pw-not-staff-123")
    client.force_login(user)
    response = client.get(reverse("admin:runs_run_sandbox"))
    assert response.status_code == 302 and "login" in response["Location"]


def _check(env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_manage_check_lists_the_layers():
    done = _check({})
    assert done.returncode == 0, done.stderr
    assert "sandbox layer landlock:" in done.stderr + done.stdout
    assert "sandbox layer seccomp:" in done.stderr + done.stdout


def test_manage_check_fails_on_a_host_without_the_layers():
    done = _check({"RLMWEB_SANDBOX_TEST_NO_OS_LAYERS": "unavailable"})
    out = done.stderr + done.stdout
    assert done.returncode != 0
    assert "rlmweb.E011" in out and "RLMWEB_SANDBOX_ALLOW_DEGRADED=1" in out
    allowed = _check({"RLMWEB_SANDBOX_TEST_NO_OS_LAYERS": "unavailable", "RLMWEB_SANDBOX_ALLOW_DEGRADED": "1"})
    assert allowed.returncode == 0 and "rlmweb.W010" in allowed.stderr + allowed.stdout
