"""Compare two runs: answers side by side with their differences marked, cost per root iteration
(the turn and everything its cells launched), and the top-level cells' code diffed line by line."""

import pytest

from apps.runs import compare
from apps.runs.models import RunStatus
from apps.runs.sink import persist_events
from tests.review.trajectories import Trajectory
from tests.web.runs_factories import clean_rate_limits, make_document, make_run  # noqa: F401

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_rate_limits", "data_dir")]


def test_word_diff_marks_only_what_differs_and_escapes():
    a, b = compare.word_diff("The code is <PLUM-42>.", "The code is <PEAR-7>.")
    assert str(a) == "The code is &lt;<del>PLUM-42</del>&gt;."
    assert str(b) == "The code is &lt;<ins>PEAR-7</ins>&gt;."


def test_an_answer_against_no_answer_is_not_marked():
    a, b = compare.word_diff("The code is PLUM-42.", "")
    assert (str(a), str(b)) == ("The code is PLUM-42.", "")


def test_line_diff_and_cells_aligned_by_position():
    pairs = compare.aligned_cells(["x = 1\nprint(x)", "print(2)"], ["x = 2\nprint(x)"])
    assert [(line.kind, line.text) for line in pairs[0].lines] == [
        ("removed", "x = 1"), ("added", "x = 2"), ("same", "print(x)")]
    assert not pairs[0].same and pairs[1].b is None
    assert [line.kind for line in pairs[1].lines] == ["removed"]


def test_costs_per_iteration_include_what_the_cells_launched():
    t = Trajectory().turn("```repl\nprint(llm_query('a'))\n```").cell(code="print(llm_query('a'))", stdout="A")
    t.subcall("a", "A").subcall("b", "B").turn("FINAL(A)").answer("A").finish()
    shape = compare.run_shape(t.events)
    first, second = shape.iterations[1], shape.iterations[2]
    assert first.cost_usd == pytest.approx(0.001 + 2 * 0.0001) and first.subcalls == 2
    assert second.cost_usd == pytest.approx(0.001) and second.subcalls == 0
    assert shape.cells == ["print(llm_query('a'))"]


def run_with(team, user, doc, answer, code):
    t = Trajectory().turn("```repl\n" + code + "\n```").cell(code=code, stdout=answer).turn(f"FINAL({answer})")
    t.answer(answer).finish()
    run = make_run(team, user, [doc], status=RunStatus.SUCCEEDED, final_answer=answer, cost_usd=0.002)
    persist_events(run.pk, t.as_events())
    return run


def test_the_compare_page(client, user, team):
    client.force_login(user)
    doc = make_document(team, user=user)
    a = run_with(team, user, doc, "The code is PLUM-42.", "i = context.find('code')\nprint(context[i:i+20])")
    b = run_with(team, user, doc, "The code is PEAR-7.", "i = context.find('secret')\nprint(context[i:i+20])")
    html = client.get(f"/runs/compare/?a={a.pk}&b={b.pk}").content.decode()
    assert "The code is <del>PLUM-42</del>." in html
    assert "The code is <ins>PEAR-7</ins>." in html
    assert '<table class="table num-table" id="iteration-costs">' in html
    assert "<td>$0.0010</td>" in html
    assert '<span class="diff-removed">- i = context.find(&#x27;code&#x27;)</span>' in html
    assert '<span class="diff-added">+ i = context.find(&#x27;secret&#x27;)</span>' in html
    assert '<span class="diff-same">  print(context[i:i+20])</span>' in html


def test_compare_without_two_runs_goes_to_the_list_to_pick_them(client, user):
    client.force_login(user)
    response = client.get("/runs/compare/", follow=True)
    assert response.redirect_chain == [("/runs/", 302)]
    assert "Tick two runs in the list to compare them." in response.content.decode()
