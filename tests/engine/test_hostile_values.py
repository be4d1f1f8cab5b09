"""Values REPL code builds cannot stop a run: the engine reads them only through the sandbox,
under the cell timeout, and goes on with feedback for the root model."""

from __future__ import annotations

from tests.engine.conftest import repl, sim_spec
from worker.engine import run

LOOPING_STR = (
    "class L(str):\n    def __str__(self):\n        while True:\n            pass\n"
    "    def __len__(self):\n        while True:\n            pass\n"
    "x = L('abc')\nprint('made')"
)


def test_a_final_var_whose_text_loops_is_feedback_and_the_run_finishes(provider, write_doc, sink):
    doc = write_doc("doc.txt", "hello world " * 100)
    script = [repl(LOOPING_STR), "FINAL_VAR(x)", repl("answer = 'plain'\nFINAL_VAR('answer')")]
    result = run(sim_spec(provider, [doc], root_script=script, cell_timeout_s=2), sink)
    assert result.final_answer == "plain", result
    turns = [e for e in sink.events if e.type == "root.turn"]
    assert any("FINAL_VAR(x) could not be read" in str(e.data) for e in turns), [e.data for e in turns][-1]


def test_a_huge_final_answer_is_cut_with_a_note(provider, write_doc, sink):
    doc = write_doc("doc.txt", "hello world " * 100)
    result = run(sim_spec(provider, [doc], root_script=[repl("FINAL('z' * 3_000_000)")]), sink)
    assert len(result.final_answer) <= 1_000_000
    assert "answer cut: it had 3,000,000 characters" in result.final_answer


def test_a_host_without_landlock_and_seccomp_fails_the_run_at_once_naming_them(provider, write_doc, sink,
                                                                                monkeypatch):
    monkeypatch.setenv("RLMWEB_SANDBOX_TEST_NO_OS_LAYERS", "unavailable")  # the child reports them missing
    monkeypatch.delenv("RLMWEB_SANDBOX_ALLOW_DEGRADED", raising=False)
    doc = write_doc("doc.txt", "hello world " * 100)
    result = run(sim_spec(provider, [doc], root_script=[repl("print(1)"), "FINAL(1)"]), sink)
    assert result.status == "failed"
    assert "landlock" in result.failure_reason and "seccomp" in result.failure_reason
    assert "RLMWEB_SANDBOX_ALLOW_DEGRADED=1" in result.failure_reason
    assert not sink.of_type("cell.finished")  # no cell ran
