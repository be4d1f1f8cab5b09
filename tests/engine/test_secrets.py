"""API keys are resolved by the LM client only: never in prompts, events, or the REPL."""

import json

from worker.engine import run

from .conftest import SECRET_KEY, repl, sim_spec


def test_the_key_reaches_the_provider_and_nothing_else(provider, write_doc, sink):
    doc = write_doc("a.txt", "abc")
    provider.root_replies = [
        repl("import os"),
        repl("print(SHOW_VARS())\nr = llm_query_batched(['a', 'b'])\nprint(r)"),
        repl("x = rlm_query('look', context=context)\nFINAL_VAR('r')"),
    ]
    result = run(sim_spec(provider, [doc], max_depth=1), sink)
    assert result.status == "succeeded", result.failure_reason
    assert result.cells[0]["error"]  # no os module in the REPL
    assert all({k.lower(): v for k, v in r.headers.items()}.get("authorization") == f"Bearer {SECRET_KEY}" for r in provider.requests)
    assert SECRET_KEY not in json.dumps([e.to_dict() for e in sink.events])
    assert all(SECRET_KEY not in json.dumps(r.messages) for r in provider.requests)
