"""Reading root replies: which code runs, and which text counts as a final answer."""

from worker.engine.parsing import code_blocks, text_final


def test_repl_and_python_blocks_run_in_order_other_fences_do_not():
    reply = "Plan.\n```repl\nx = 1\n```\nthen\n```python\nprint(x)\n```\n```text\nnot code\n```\n```\nbare\n```"
    assert code_blocks(reply) == ["x = 1\n", "print(x)\n"]


def test_final_at_line_start_with_multiline_answer_and_quotes():
    assert text_final('All checked.\nFINAL("Paris, France")').value == "Paris, France"
    assert text_final("FINAL(line one\nline (two))\n").value == "line one\nline (two)"


def test_final_mentioned_inside_reasoning_is_not_an_answer():
    assert text_final("I will call FINAL(answer) once I have looked at the data.") is None
    assert text_final("```repl\nFINAL(42)\n```") is None


def test_bare_final_var_in_text_names_a_variable():
    final = text_final("The answer is in my variable.\nFINAL_VAR(summary)")
    assert (final.kind, final.value) == ("FINAL_VAR", "summary")
    assert text_final('FINAL_VAR("summary")').value == "summary"
