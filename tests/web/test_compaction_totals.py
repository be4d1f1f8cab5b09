"""A run the engine could not finish itself is totalled from its recorded calls (the engine's
`recorded_totals`, read by `apps.runs.lifecycle`): the summarising call of a compaction counts like
a root turn (but is no iteration)."""

import time

import pytest

from apps.runs.lifecycle import run_recorded_totals
from apps.runs.models import RunStatus
from apps.runs.sink import persist_events
from tests.web.runs_factories import make_document, make_run
from worker.engine.events import Event

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("data_dir")]


def test_recorded_totals_include_compactions(user, team):
    run = make_run(team, user, [make_document(team)], status=RunStatus.RUNNING)
    turn = {"node_id": None, "depth": 0, "iteration": 1, "cost_usd": 0.1, "prompt_tokens": 10, "completion_tokens": 5}
    compacted = {"node_id": None, "depth": 0, "iteration": 2, "cost_usd": 0.25, "prompt_tokens": 20,
                 "completion_tokens": 3, "tokens_before": 900, "tokens_after": 100}
    persist_events(run.pk, [Event(1, "root.turn", time.time(), turn), Event(2, "root.compacted", time.time(), compacted)])
    totals = run_recorded_totals(run.pk)
    assert (totals["cost_usd"], totals["prompt_tokens"], totals["completion_tokens"]) == (0.35, 30, 8)
    assert totals["iterations"] == 1 and totals["cost_unknown_calls"] == 0
