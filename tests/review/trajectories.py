"""Synthetic trajectories for the review tests: event lists shaped exactly like the engine's.

Used for rules the engine cannot easily be made to exhibit (a lost worker) and for fast, pure tests
of each classifier rule; the engine-driven tests live in tests/web/test_review_engine.py.
"""

import time

from worker.engine.events import Event

TOTALS = {"cost_usd": 0.0, "cost_unknown_calls": 0, "prompt_tokens": 0, "completion_tokens": 0, "iterations": 0,
          "subcalls": 0, "max_depth_reached": 0, "elapsed_s": 0.0}


class Trajectory:
    """Builds one run's events in order: `Trajectory(doc_chars=...).cell(...).subcall(...).finish(...)`."""

    def __init__(self, question: str = "What is the code?", doc_chars: int = 10_000, mode: str = "rlm",
                 root_model: str = "openai/gpt-4o", sub_model: str = "openai/gpt-4o-mini") -> None:
        self.events: list[dict] = []
        self.iteration = 0
        self.cells = 0
        self.nodes = 0
        self.totals = dict(TOTALS)
        self.emit("run.started", question=question, mode=mode, root_model=root_model, sub_model=sub_model,
                  limits={"max_iterations": 20}, documents=[{"name": "doc.txt", "chars": doc_chars}], offline=False)

    def emit(self, type_: str, **data) -> "Trajectory":
        self.events.append({"seq": len(self.events) + 1, "type": type_, "ts": time.time(), "data": data})
        return self

    def turn(self, content: str, forced: bool = False, cost: float = 0.001) -> "Trajectory":
        self.iteration += 1
        self.totals["iterations"] = self.iteration
        self.totals["cost_usd"] = round(self.totals["cost_usd"] + cost, 10)
        self.emit("root.turn", node_id=None, depth=0, iteration=self.iteration, content=content,
                  prompt_tokens=10, completion_tokens=5, cost_usd=cost, latency_s=0.1,
                  model="openai/gpt-4o", forced=forced, attempts=1, input=[])
        return self.emit("cost.updated", totals=dict(self.totals))  # as the engine does after every call

    def cell(self, code: str = "print(1)", stdout: str = "", error: str | None = None, killed: bool = False,
             depth: int = 0) -> "Trajectory":
        self.cells += 1
        cell_id = f"c{self.cells}"
        self.emit("cell.started", cell_id=cell_id, node_id=None, depth=depth, iteration=self.iteration,
                  index=0, code=code)
        return self.emit("cell.finished", cell_id=cell_id, node_id=None, depth=depth, stdout=stdout,
                         stdout_chars=len(stdout), truncated=False, error=error, duration_s=0.01, killed=killed,
                         state_note="")

    def subcall(self, prompt: str, response: str = "ok", depth: int = 1, kind: str = "llm") -> "Trajectory":
        self.nodes += 1
        node_id = f"n{self.nodes}"
        self.totals["subcalls"] += 1
        self.totals["max_depth_reached"] = max(self.totals["max_depth_reached"], depth)
        self.emit("subcall.started", node_id=node_id, parent_id=None, cell_id=f"c{self.cells}", depth=depth,
                  kind=kind, model="openai/gpt-4o-mini", prompt=prompt, prompt_chars=len(prompt), ranges=[],
                  batch_id=None, batch_index=None)
        self.emit("subcall.finished", node_id=node_id, response=response, response_chars=len(response),
                  prompt_tokens=len(prompt) // 4, completion_tokens=len(response) // 4, cost_usd=0.0001,
                  latency_s=0.1, error=None, attempts=1)
        if kind == "llm":  # an rlm sub-call's cost is the roll-up of its child's calls, counted there
            self.totals["cost_usd"] = round(self.totals["cost_usd"] + 0.0001, 10)
        return self.emit("cost.updated", totals=dict(self.totals))

    def answer(self, text: str, source: str = "FINAL") -> "Trajectory":
        return self.emit("final.answer", answer=text, source=source, node_id=None)

    def finish(self, status: str = "succeeded", stop_reason: str | None = None, failure_reason: str | None = None,
               forced_final: bool = False, totals: bool = True) -> "Trajectory":
        return self.emit("run.finished", status=status, failure_reason=failure_reason, stop_reason=stop_reason,
                         totals=dict(self.totals) if totals else None, forced_final=forced_final)

    def as_events(self) -> list[Event]:
        return [Event(e["seq"], e["type"], e["ts"], e["data"]) for e in self.events]


def succeeded(answer: str = "PLUM-42") -> Trajectory:
    return (Trajectory().turn("```repl\nprint(context[:100])\n```").cell(stdout=f"The secret code is {answer}.")
            .turn(f"FINAL({answer})").answer(answer).finish())
