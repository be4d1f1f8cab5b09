"""Follow-ups and team helpers in the engine: a run leaves a snapshot of its REPL's plain data, the
next run of the conversation starts with it and with the earlier questions and answers; helpers are
defined before the first turn, hidden from the root's cells but recorded and listed to it."""

import json

from worker.engine import Earlier, Helper, Session, run
from worker.engine.events import ListSink
from worker.sandbox import snapshot as snapshots

from .conftest import repl, sim_spec

BUILD = repl("chunks = [context[:10], context[10:20]]\nindex = {'2019': (3, 4), 7: {1, 2}}\n"
             "total = 41\ndef twice(x):\n    return 2 * x\nprint(len(chunks))")


def first_input(sink: ListSink) -> str:
    return sink.of_type("root.turn")[0].data["input"][-1]["content"]


def first_run(provider, write_doc, tmp_path, script=None):
    doc = write_doc("report.txt", "Revenue 2018: 10. Revenue 2019: 12. The code is 42.")
    spec = sim_spec(provider, [doc], question="Revenue in 2018?",
                    root_script=script or [BUILD, repl("FINAL('10')")])
    spec.session = Session(save_to=str(tmp_path / "snap" / "a.json"))
    sink = ListSink()
    result = run(spec, sink)
    return doc, spec, result, sink


def test_a_finished_run_leaves_its_plain_data_and_lists_what_it_could_not_keep(provider, write_doc, tmp_path):
    _, spec, result, sink = first_run(provider, write_doc, tmp_path)
    assert result.status == "succeeded"
    saved = sink.of_type("snapshot.saved")[0].data
    assert saved["error"] is None and saved["bytes"] > 0
    assert {v["name"] for v in saved["variables"]} == {"chunks", "index", "total"}
    assert [(i["name"], "function" in i["reason"]) for i in saved["not_carried"]] == [("twice", True)]
    assert sink.of_type("snapshot.saved")[0].seq < sink.of_type("run.finished")[0].seq
    document = json.loads((tmp_path / "snap" / "a.json").read_text())
    assert document["format"] == snapshots.FORMAT and "twice" not in document["variables"]


def test_a_follow_up_reuses_the_repl_state_and_sees_the_conversation(provider, write_doc, tmp_path):
    doc, first_spec, _, _ = first_run(provider, write_doc, tmp_path)
    script = [repl("print(chunks[1], index['2019'], sorted(index[7]), total + 1)"), repl("FINAL('12')")]
    spec = sim_spec(provider, [doc], question="Now the same for 2019.", root_script=script)
    spec.session = Session(conversation=[Earlier("Revenue in 2018?", "10")],
                           restore_from=first_spec.session.save_to)
    sink = ListSink()
    result = run(spec, sink)
    assert result.status == "succeeded"
    assert result.cells[0]["stdout"] == "18: 10. Re (3, 4) [1, 2] 42\n"
    restored = sink.of_type("snapshot.restored")[0].data
    assert restored["error"] is None
    assert {v["name"] for v in restored["variables"]} == {"chunks", "index", "total"}
    assert [i["name"] for i in restored["not_carried"]] == ["twice"]
    text = first_input(sink)
    assert "Earlier in this conversation" in text and "Question: Revenue in 2018?" in text and "Answer: 10" in text
    assert "`chunks` (list)" in text and "`twice` (function)" in text
    assert restored and sink.of_type("snapshot.restored")[0].seq < sink.of_type("root.turn")[0].seq


def test_a_damaged_snapshot_is_reported_and_the_run_goes_on(provider, write_doc, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "rlmweb-snapshot", "version": 1, "variables": {"x": {"pickle": "x"}}, '
                   '"not_carried": []}')
    doc = write_doc("a.txt", "The code is 42.")
    spec = sim_spec(provider, [doc], root_script=[repl("print('x' in dir())"), repl("FINAL('42')")])
    spec.session = Session(restore_from=str(bad))
    sink = ListSink()
    result = run(spec, sink)
    assert result.status == "succeeded" and result.cells[0]["stdout"] == "False\n"
    restored = sink.of_type("snapshot.restored")[0].data
    assert restored["variables"] == [] and "invalid data" in restored["not_carried"][0]["reason"]
    (tmp_path / "bad.json").write_bytes(b"\x80\x04\x95pickle")
    sink = ListSink()
    assert run(spec, sink).status == "succeeded"
    assert "SnapshotInvalid" in sink.of_type("snapshot.restored")[0].data["error"]
    assert "could not be restored" in first_input(sink)


HELPER = Helper("count_words", 3, 'def count_words(text):\n    """How many words `text` has."""\n'
                                  "    return len(text.split())\n")
RAISES = Helper("explode", 1, "def explode():\n    raise ValueError('helper broke')\n")
BROKEN = Helper("broken", 2, "def broken():\n    return 1\nundefined_name\n")


def test_helpers_are_defined_listed_and_recorded_but_not_cells(provider, write_doc):
    doc = write_doc("a.txt", "one two three four")
    script = [repl("print(count_words(context))"), repl("explode()"), repl("FINAL(str(count_words('a b')))")]
    spec = sim_spec(provider, [doc], root_script=script)
    spec.session = Session(helpers=[HELPER, RAISES, BROKEN])
    sink = ListSink()
    result = run(spec, sink)
    assert result.status == "succeeded" and result.final_answer == "2"
    assert result.cells[0]["stdout"] == "4\n"
    assert "ValueError: helper broke" in result.cells[1]["error"]  # an ordinary cell error
    loaded = {h["name"]: h for h in sink.of_type("helpers.loaded")[0].data["helpers"]}
    assert loaded["count_words"]["version"] == 3 and loaded["count_words"]["error"] is None
    assert loaded["count_words"]["doc"] == "How many words `text` has."
    assert "NameError" in loaded["broken"]["error"]
    assert len(sink.of_type("cell.started")) == 3  # the helpers' cells are not the root's
    text = first_input(sink)
    assert "`count_words(text)`: How many words `text` has." in text
    assert "`broken()`: failed to load" in text


def test_helpers_are_not_listed_as_variables_the_snapshot_left_behind(provider, write_doc, tmp_path):
    doc = write_doc("a.txt", "one two")
    spec = sim_spec(provider, [doc], root_script=[repl("n = count_words(context)"), repl("FINAL(str(n))")])
    spec.session = Session(helpers=[HELPER], save_to=str(tmp_path / "s.json"))
    sink = ListSink()
    run(spec, sink)
    saved = sink.of_type("snapshot.saved")[0].data
    assert [v["name"] for v in saved["variables"]] == ["n"] and saved["not_carried"] == []


def test_the_offline_model_runs_a_follow_up(write_doc, tmp_path):
    from worker.engine import RunSpec

    doc = write_doc("a.txt", "Filler text. The launch code is 7341. More filler.")
    first = RunSpec(question="What is the launch code?", documents=[doc],
                    session=Session(save_to=str(tmp_path / "o.json")))
    sink = ListSink()
    assert run(first, sink).status == "succeeded"
    assert "answer" in {v["name"] for v in sink.of_type("snapshot.saved")[0].data["variables"]}
    follow = RunSpec(question="Which launch code again?", documents=[doc],
                     session=Session(conversation=[Earlier("What is the launch code?", "7341")],
                                     restore_from=str(tmp_path / "o.json"), helpers=[HELPER]))
    sink = ListSink()
    result = run(follow, sink)
    assert result.status == "succeeded" and "7341" in result.final_answer
    assert "answer" in {v["name"] for v in sink.of_type("snapshot.restored")[0].data["variables"]}


def test_a_follow_up_with_helpers_through_the_simulated_provider(provider, write_doc, tmp_path):
    doc, first_spec, _, _ = first_run(provider, write_doc, tmp_path)
    provider.root_replies = [repl("print(count_words(chunks[0]), total)"), repl("FINAL(str(total + 1))")]
    spec = sim_spec(provider, [doc], question="And one more?")
    spec.session = Session(conversation=[Earlier("Revenue in 2018?", "10")],
                           restore_from=first_spec.session.save_to, helpers=[HELPER])
    sink = ListSink()
    result = run(spec, sink)
    assert result.status == "succeeded" and result.final_answer == "42"
    assert result.cells[0]["stdout"] == "2 41\n"
    first_request = next(r for r in provider.requests if r.model == "gpt-4o")
    assert "Answer: 10" in first_request.prompt and "`total` (int)" in first_request.prompt
    assert "`count_words(text)`: How many words `text` has." in first_request.prompt
