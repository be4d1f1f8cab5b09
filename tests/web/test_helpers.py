"""Team REPL helpers: who may save them, what cannot be saved, versions, the test page, and the runs
that load them (each run records the versions it had)."""

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from apps.helpers import services
from apps.helpers.models import Helper
from apps.runs import services as run_services
from apps.runs.execution import run_execute
from apps.runs.models import RunEvent, RunStatus
from apps.teams.models import Membership, Role
from tests.conftest import make_user
from tests.web.runs_factories import clean_rate_limits, make_document  # noqa: F401

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_rate_limits", "data_dir")]

WORDS = 'def word_count(text):\n    """How many words `text` has."""\n    return len(text.split())\n'
WORDS_V2 = 'def word_count(text):\n    """How many words, times ten."""\n    return 10 * len(text.split())\n'


def test_owners_save_versions_and_the_list_shows_signature_and_docstring(client, user, team):
    client.force_login(user)
    response = client.post(reverse("helper_new"), {"name": "word_count", "source": WORDS})
    helper = Helper.objects.get(team=team, name="word_count")
    assert response.status_code == 302 and helper.current.version == 1
    assert helper.current.signature == "word_count(text)" and helper.current.doc == "How many words `text` has."
    client.post(reverse("helper_edit", args=[helper.pk]), {"source": WORDS_V2})
    assert [v.version for v in helper.versions.all()] == [2, 1]
    page = client.get(reverse("helper_list")).content.decode()
    assert "word_count(text)" in page and "How many words, times ten." in page and "v2" in page


@pytest.mark.parametrize(("name", "source", "field", "message"), [
    ("f", "def f(:\n    pass\n", "source", "SyntaxError"),
    ("f", "def f(x):\n    return x._secret\n", "source", "_secret"),
    ("f", "def g():\n    return 1\n", "source", "def f(...)"),
    ("llm_query", "def llm_query():\n    return 1\n", "name", "reserves"),
    ("_hidden", "def _hidden():\n    return 1\n", "name", "Python name"),
    ("f", "x" * 20_001, "source", "at most"),
])
def test_a_helper_that_does_not_compile_under_the_cell_policy_cannot_be_saved(user, team, name, source, field,
                                                                               message):
    with pytest.raises(ValidationError) as caught:
        services.helper_save(user, team, name, source)
    assert message in caught.value.message_dict[field][0]
    assert not Helper.objects.filter(team=team).exists()


def test_members_and_viewers_cannot_change_helpers(user, team):
    for role in (Role.MEMBER, Role.VIEWER):
        other = make_user(f"user-{role}")
        Membership.objects.create(team=team, user=other, role=role)
        with pytest.raises(PermissionDenied):
            services.helper_save(other, team, "word_count", WORDS)
    with pytest.raises(services.HelperNotFound):
        services.helper_save(make_user("outsider"), team, "word_count", WORDS)


def test_the_page_refuses_a_broken_helper_with_the_compile_error(client, user, team):
    client.force_login(user)
    response = client.post(reverse("helper_new"), {"name": "f", "source": "def f(x):\n    return x.__class__\n"})
    assert response.status_code == 400 and "__class__" in response.content.decode()
    assert not Helper.objects.exists()


def test_a_helper_is_tested_against_a_sample_document(client, user, team):
    doc = make_document(team, "one two three four five", user=user)
    client.force_login(user)
    response = client.post(reverse("helper_test"), {"name": "word_count", "source": WORDS, "document": str(doc.pk)})
    assert response.status_code == 200 and "5" in response.content.decode()
    raising = 'def word_count(text):\n    raise ValueError("bad input")\n'
    page = client.post(reverse("helper_test"), {"name": "word_count", "source": raising, "document": str(doc.pk),
                                                "expression": "word_count(context[:5])"}).content.decode()
    assert "ValueError: bad input" in page and "The test raised an error" in page
    bad_doc = client.post(reverse("helper_test"), {"name": "word_count", "source": WORDS, "document": "nope"})
    assert bad_doc.status_code == 400


def test_runs_load_the_versions_they_recorded_and_report_them(user, team):
    services.helper_save(user, team, "word_count", WORDS)
    doc = make_document(team, "one two three", user=user)
    run = run_services.run_create(user, team, "How many words?", [doc.pk], enqueue=False)
    helper = Helper.objects.get(name="word_count")
    assert run.helper_versions == [{"id": helper.pk, "name": "word_count", "version": 1}]
    services.helper_save(user, team, "word_count", WORDS_V2, helper)  # saved after the run was asked
    script = ["```repl\nn = word_count(context)\nprint(n)\n```", "```repl\nFINAL(str(n))\n```"]
    run_execute(run.pk, "test", script)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.final_answer == "3"  # version 1, as recorded
    loaded = RunEvent.objects.get(run=run, type="helpers.loaded").data["helpers"]
    assert [(h["name"], h["version"], h["error"]) for h in loaded] == [("word_count", 1, None)]
    first_turn = RunEvent.objects.filter(run=run, type="root.turn").first().data["input"][-1]["content"]
    assert "`word_count(text)`: How many words `text` has." in first_turn


def test_deactivated_helpers_are_not_loaded_into_new_runs(user, team):
    version = services.helper_save(user, team, "word_count", WORDS)
    services.helper_deactivate(user, version.helper)
    doc = make_document(team, "one two", user=user)
    assert run_services.run_create(user, team, "Q?", [doc.pk], enqueue=False).helper_versions == []
