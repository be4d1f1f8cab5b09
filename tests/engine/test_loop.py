"""The root loop: cells, output truncation, and every way a run can end with (or without) an answer."""

from worker.engine import run

from .conftest import repl, sim_spec


def finished(sink):
    return sink.of_type("run.finished")[-1].data


def test_final_inside_a_code_block_ends_the_run(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl("x = context.split()[-1].strip('.')\nprint(x)"), repl("FINAL('the code is ' + x)")]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert (result.status, result.final_answer, result.answer_source) == ("succeeded", "the code is 42", "FINAL")
    assert result.iterations == 2 and result.stop_reason is None
    assert result.cells[0] == {"code": "x = context.split()[-1].strip('.')\nprint(x)\n", "stdout": "42\n", "error": None}
    assert sink.of_type("final.answer")[0].data == {"answer": "the code is 42", "source": "FINAL", "node_id": None}


def test_final_var_returns_a_variable_longer_than_any_reply(provider, write_doc, sink):
    doc = write_doc("a.txt", "row\n" * 5000)
    script = [repl("out = '\\n'.join('ROW ' + str(i) for i in range(5000))\nprint(len(out))"),
              repl('FINAL_VAR("out")')]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert result.answer_source == "FINAL_VAR"
    assert result.final_answer.count("ROW ") == 5000


def test_plain_text_answer_after_looking_counts_as_final(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl("print(context)"), "The code is 42."]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert (result.final_answer, result.answer_source) == ("The code is 42.", "plain")


def test_plain_text_on_the_first_turn_is_sent_back_to_explore(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = ["It is probably 7.", repl("print(context)"), "FINAL(42)"]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert (result.final_answer, result.iterations) == ("42", 3)


def test_final_var_naming_a_missing_variable_is_told_not_fatal(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl("answer = 42"), "FINAL_VAR(answr)", "FINAL_VAR(answer)"]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert (result.status, result.final_answer, result.answer_source) == ("succeeded", "42", "FINAL_VAR")
    assert result.iterations == 3


def test_final_var_inside_code_for_a_missing_variable_surfaces_as_a_cell_error(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl('FINAL_VAR("nope")'), repl("nope = 'found'"), repl('FINAL_VAR("nope")')]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert result.final_answer == "found"
    assert result.cells[0]["error"]


def test_final_written_next_to_code_is_ignored_until_the_output_is_seen(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl("print(len(context))", "Let me check.") + "\nFINAL(invented)", "FINAL(15 characters)"]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert result.final_answer == "15 characters"


def test_cells_run_in_order_and_stop_at_the_first_final(provider, write_doc, sink):
    doc = write_doc("a.txt", "x")
    script = ["```repl\nn = 1\n```\n```python\nn += 1\nFINAL(n)\n```\n```repl\nprint('never')\n```"]
    result = run(sim_spec(provider, [doc], root_script=script), sink)
    assert result.final_answer == "2"
    assert len(result.cells) == 2
    assert [e.data["index"] for e in sink.of_type("cell.started")] == [0, 1]


def test_long_output_is_truncated_with_a_note_and_full_length_recorded(provider, write_doc, sink):
    doc = write_doc("a.txt", "y" * 50_000)
    script = [repl("print(context)"), "FINAL(done)"]
    result = run(sim_spec(provider, [doc], root_script=script, output_limit_chars=1000), sink)
    cell = sink.of_type("cell.finished")[0].data
    assert cell["truncated"] is True
    assert cell["stdout_chars"] >= 50_000
    assert len(cell["stdout"]) <= 1100
    assert result.status == "succeeded"


def test_iteration_limit_asks_once_for_the_best_final_answer(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl("guess = 42"), repl("print(guess)"), "FINAL_VAR(guess)"]
    result = run(sim_spec(provider, [doc], root_script=script, max_iterations=2), sink)
    assert (result.status, result.final_answer, result.forced_final) == ("succeeded", "42", True)
    assert result.stop_reason == "max_iterations"
    turns = sink.of_type("root.turn")
    assert [t.data["forced"] for t in turns] == [False, False, True]
    assert finished(sink)["forced_final"] is True


def test_forced_turn_in_plain_text_is_marked_forced(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    script = [repl("print(1)"), "My best guess: 42."]
    result = run(sim_spec(provider, [doc], root_script=script, max_iterations=1), sink)
    assert (result.final_answer, result.answer_source, result.forced_final) == ("My best guess: 42.", "forced", True)


def test_script_ending_without_an_answer_fails_clearly(provider, write_doc, sink):
    doc = write_doc("a.txt", "x")
    result = run(sim_spec(provider, [doc], root_script=[repl("print(1)")]), sink)
    assert (result.status, result.stop_reason) == ("failed", "no_final_answer")
    assert "script" in result.failure_reason


def test_live_root_through_the_provider(provider, write_doc, sink):
    doc = write_doc("a.txt", "The code is 42.")
    provider.root_replies = [repl("print(context[-3:-1])"), "FINAL(42)"]
    result = run(sim_spec(provider, [doc]), sink)
    assert result.final_answer == "42"
    first = provider.requests[0]
    assert first.model == "gpt-4o"
    system, user = first.messages[0]["content"], first.messages[1]["content"]
    assert "rlm" in system.lower() and "FINAL_VAR" in system
    assert "15 characters" in user and "The code is 42." in user  # metadata and a short preview only
    # where the root stands changes per turn: it ends the newest message, never the (cached) system prompt
    assert "depth 0" in user.splitlines()[-1] and "depth 0" not in system
    second_user = provider.requests[1].messages[-1]["content"]
    assert "42" in second_user and "spent $" in second_user


def test_context_never_enters_the_root_prompt(provider, write_doc, sink):
    body = "z" * 100_000
    doc = write_doc("a.txt", body)
    provider.root_replies = [repl("print(len(context))"), "FINAL(done)"]
    run(sim_spec(provider, [doc]), sink)
    for request in provider.requests:
        assert sum(len(m["content"]) for m in request.messages) < 20_000
