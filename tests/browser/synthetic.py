"""Synthetic RLM trajectories in the engine's event format, for the explorer's browser tests and
benchmark. Deterministic for a seed; sized by the number of sub-call nodes.

Shape: a probe cell; fan-out cells of batched `llm_query` calls over chunks of the first document
(16 at a time, so the timeline shows concurrency); a cell whose `rlm_query` starts a child RLM with
its own turn, cell and depth-2 sub-calls; a verification cell with exact and near-identical
repeated prompts; a failing cell; then FINAL. Every 50th call has an unknown price.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

WORDS = ["ledger", "harbour", "quarterly", "signal", "vessel", "protocol", "archive", "meridian", "copper", "delta", "falcon", "river", "summit", "orchard", "lantern", "beacon", "cipher", "granite", "willow", "ember", "canyon", "atlas", "nimbus", "quartz", "sable", "tundra", "violet", "walnut", "zephyr", "anchor", "bramble", "cobalt", "dune", "fjord", "glacier", "hollow", "indigo", "juniper"]
QUESTION = "What is the launch code for project Heron?"
ANSWER = "The launch code for project Heron is AMBER-7742."
DOCUMENTS = [{"name": "report.txt", "chars": 2_000_000}, {"name": "appendix.md", "chars": 300_000}]
OFFLINE = "offline/heuristic"


@dataclass
class _Builder:
    seed: int
    model: str
    t: float = 1_700_000_000.0
    events: list = field(default_factory=list)
    nodes: int = 0
    cells: int = 0
    totals: dict = field(default_factory=lambda: {
        "cost_usd": 0.0, "cost_unknown_calls": 0, "prompt_tokens": 0, "completion_tokens": 0,
        "iterations": 0, "subcalls": 0, "max_depth_reached": 0, "elapsed_s": 0.0,
    })

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.t0 = self.t

    def emit(self, type_: str, ts: float | None = None, **data) -> dict:
        if ts is not None:
            self.t = max(self.t, ts)
        event = {"seq": len(self.events) + 1, "type": type_, "ts": round(self.t, 4), "data": data}
        self.events.append(event)
        return event

    def cost(self, prompt_tokens: int, completion_tokens: int, unknown: bool) -> float | None:
        self.totals["prompt_tokens"] += prompt_tokens
        self.totals["completion_tokens"] += completion_tokens
        if unknown:
            self.totals["cost_unknown_calls"] += 1
            return None
        c = round(prompt_tokens * 1.5e-7 + completion_tokens * 6e-7, 8)
        self.totals["cost_usd"] = round(self.totals["cost_usd"] + c, 8)
        return c

    def cost_updated(self):
        self.totals["elapsed_s"] = round(self.t - self.t0, 3)
        self.emit("cost.updated", totals=dict(self.totals))

    def words(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def turn(self, content: str, *, node_id=None, depth=0, iteration=1, forced=False):
        latency = round(self.rng.uniform(0.8, 2.5), 3)
        self.t += latency
        pt, ct = 1500 + 400 * iteration, 120 + len(content) // 4
        if depth == 0:
            self.totals["iterations"] += 1
        cost = self.cost(pt, ct, unknown=False)
        sent = ([{"role": "system", "content": "You answer questions about documents you cannot see.", "chars": 52},
                 {"role": "user", "content": "Question: " + self.words(12), "chars": 200_000}]
                if iteration == 1 else [{"role": "user", "content": "Output of cell: " + self.words(20), "chars": 0}])
        sent[-1]["chars"] = max(sent[-1]["chars"], len(sent[-1]["content"]))
        self.emit("root.turn", node_id=node_id, depth=depth, iteration=iteration, content=content,
                  prompt_tokens=pt, completion_tokens=ct, cost_usd=cost, latency_s=latency,
                  model=self.model, forced=forced, input=sent)
        self.cost_updated()

    def cell(self, code: str, *, node_id=None, depth=0, iteration=1, index=0) -> str:
        self.cells += 1
        cell_id = f"c{self.cells}"
        self.emit("cell.started", cell_id=cell_id, node_id=node_id, depth=depth, iteration=iteration,
                  index=index, code=code)
        return cell_id

    def cell_finished(self, cell_id: str, started: float, *, stdout="", error=None, node_id=None, depth=0,
                      limit=2000):
        self.t += 0.02
        self.emit("cell.finished", cell_id=cell_id, node_id=node_id, depth=depth, stdout=stdout[:limit],
                  stdout_chars=len(stdout), truncated=len(stdout) > limit, error=error,
                  duration_s=round(self.t - started, 4), killed=False, state_note=None)

    def batch(self, prompts: list[tuple[str, list[dict]]], *, cell_id: str, parent_id=None, depth=1,
              concurrency=16, responses=None, finish=True) -> list[str]:
        """Sub-calls run `concurrency` at a time: started/finished events in time order."""
        batch_id = f"b{cell_id}-{self.nodes}"
        workers = [self.t] * concurrency
        timeline = []
        ids = []
        starts = {}
        for i, (prompt, ranges) in enumerate(prompts):
            self.nodes += 1
            node_id = f"n{self.nodes}"
            ids.append(node_id)
            w = min(range(concurrency), key=lambda k: workers[k])
            start = workers[w] + self.rng.uniform(0.001, 0.01)
            end = start + self.rng.uniform(0.3, 2.5)
            workers[w] = end
            starts[node_id] = start
            timeline.append((start, 0, i, node_id, prompt, ranges))
            timeline.append((end, 1, i, node_id, prompt, ranges))
        timeline.sort(key=lambda x: (x[0], x[1]))
        for ts, kind, i, node_id, prompt, ranges in timeline:
            if kind == 0:
                self.totals["subcalls"] += 1
                self.totals["max_depth_reached"] = max(self.totals["max_depth_reached"], depth)
                self.emit("subcall.started", ts=ts, node_id=node_id, parent_id=parent_id, cell_id=cell_id,
                          depth=depth, kind="llm", model=self.model, prompt=prompt, prompt_chars=len(prompt),
                          ranges=ranges, batch_id=batch_id if len(prompts) > 1 else None,
                          batch_index=i if len(prompts) > 1 else None)
            elif finish:
                response = responses[i] if responses else ("NOT FOUND" if self.rng.random() < 0.9 else self.words(12))
                pt, ct = len(prompt) // 4, len(response) // 4 + 1
                cost = self.cost(pt, ct, unknown=self.nodes % 50 == 0 and i % 50 == 7)
                self.t = max(self.t, ts)
                self.emit("subcall.finished", node_id=node_id, response=response, response_chars=len(response),
                          prompt_tokens=pt, completion_tokens=ct, cost_usd=cost,
                          latency_s=round(ts - starts[node_id], 4),
                          error=None, attempts=1)
                self.cost_updated()
        return ids


def _passage_prompt(b: _Builder, doc: int, start: int, end: int, words: int) -> tuple[str, list[dict]]:
    name = DOCUMENTS[doc]["name"]
    prompt = (f"Question: {QUESTION}\nAnswer with the sentence of the passage that answers the question, or NOT FOUND."
              f"\n\nPassage ({name}, characters {start}-{end}):\n{b.words(words)}")
    return prompt, [{"doc": doc, "start": start, "end": end}]


def make_trajectory(n_nodes: int = 60, *, seed: int = 7, model: str = OFFLINE, finished: bool = True,
                    final_mismatch: bool = False, prompt_words: int = 60) -> dict:
    """{"run": {...}, "documents": [...], "events": [...]} with about `n_nodes` sub-call nodes."""
    b = _Builder(seed=seed, model=model)
    limits = {"max_iterations": 30, "max_depth": 2, "max_subcalls": 20000, "max_cost_usd": 5.0}
    b.emit("run.started", question=QUESTION, mode="rlm", root_model=model, sub_model=model, limits=limits,
           documents=DOCUMENTS, offline=model.startswith("offline/"))
    it = 1
    b.turn("I will start by probing the context: its type, size and how each document begins.\n\n"
           "```repl\nprint(len(context), [len(d) for d in context])\nprint(context[0][:200])\n```", iteration=it)
    started = b.t
    c = b.cell("print(len(context), [len(d) for d in context])\nprint(context[0][:200])\n", iteration=it)
    b.cell_finished(c, started, stdout="2 [2000000, 300000]\n" + b.words(30))

    # Fan-out: the bulk of the nodes, in cells of at most 2,000 sub-calls.
    fan = max(4, n_nodes - 11)  # + 1 rlm, 3 in the child, 7 verifications
    chunk = 1200
    done = 0
    while done < fan:
        it += 1
        size = min(2000, fan - done)
        b.turn(f"**Chunking.** I read the report in {chunk}-character chunks, {size} sub-calls batched 16 at a time.\n\n"
               "```repl\nchunks = [context[0][i:i+1200] for i in range(0, len(context[0]), 1200)]\n"
               "answers = llm_query_batched([f'Question: ...{c}' for c in chunks])\n"
               "hits = [a for a in answers if 'NOT FOUND' not in a]\nprint(len(hits), hits[:3])\n```", iteration=it)
        started = b.t
        c = b.cell("chunks = [context[0][i:i+1200] for i in range(0, len(context[0]), 1200)]\n"
                   "answers = llm_query_batched([f'Question: ...{c}' for c in chunks])\n"
                   "hits = [a for a in answers if 'NOT FOUND' not in a]\nprint(len(hits), hits[:3])\n", iteration=it)
        prompts = []
        for k in range(size):
            start = ((done + k) * chunk) % (DOCUMENTS[0]["chars"] - chunk)
            prompts.append(_passage_prompt(b, 0, start, start + chunk, prompt_words))
        responses = [ANSWER if done + k == fan // 2 else "NOT FOUND" for k in range(size)]
        b.batch(prompts, cell_id=c, responses=responses)
        done += size
        out = f"1 ['{ANSWER}']" if done > fan // 2 else "0 []"
        b.cell_finished(c, started, stdout=out + "\n" + "\n".join(f"chunk {i}: NOT FOUND" for i in range(150)))

    # A child RLM over the appendix, with depth-2 sub-calls.
    it += 1
    b.turn("The appendix may restate the code: I hand it to a child RLM.\n\n"
           "```repl\nsummary = rlm_query('Find any launch code in this appendix.', context[1])\nprint(summary)\n```",
           iteration=it)
    started = b.t
    c_parent = b.cell("summary = rlm_query('Find any launch code in this appendix.', context[1])\nprint(summary)\n",
                      iteration=it)
    b.nodes += 1
    rlm_id = f"n{b.nodes}"
    b.totals["subcalls"] += 1
    b.totals["max_depth_reached"] = max(b.totals["max_depth_reached"], 1)
    rlm_started = b.t
    before = dict(b.totals)
    b.emit("subcall.started", node_id=rlm_id, parent_id=None, cell_id=c_parent, depth=1, kind="rlm", model=model,
           prompt="Find any launch code in this appendix.", prompt_chars=38,
           ranges=[{"doc": 1, "start": 0, "end": 300_000}], batch_id=None, batch_index=None)
    b.turn("Child: I split the appendix in three and ask about each part.\n\n"
           "```repl\nparts = [context[i:i+100000] for i in range(0, len(context), 100000)]\n"
           "print(llm_query_batched(['Any launch code? ' + p for p in parts]))\n```",
           node_id=rlm_id, depth=1, iteration=1)
    started_child = b.t
    c_child = b.cell("parts = [context[i:i+100000] for i in range(0, len(context), 100000)]\n"
                     "print(llm_query_batched(['Any launch code? ' + p for p in parts]))\n",
                     node_id=rlm_id, depth=1, iteration=1)
    child_prompts = [(f"Any launch code? {b.words(40)}", [{"doc": 1, "start": k * 100_000, "end": (k + 1) * 100_000}])
                     for k in range(3)]
    b.batch(child_prompts, cell_id=c_child, parent_id=rlm_id, depth=2,
            responses=["NOT FOUND", "AMBER-7742 is mentioned as the Heron code.", "NOT FOUND"])
    b.cell_finished(c_child, started_child, stdout="['NOT FOUND', 'AMBER-7742 is mentioned as the Heron code.', 'NOT FOUND']",
                    node_id=rlm_id, depth=1)
    b.turn("FINAL(AMBER-7742 is mentioned as the Heron code.)", node_id=rlm_id, depth=1, iteration=2)
    answer = "AMBER-7742 is mentioned as the Heron code."
    b.emit("subcall.finished", node_id=rlm_id, response=answer, response_chars=len(answer),
           prompt_tokens=b.totals["prompt_tokens"] - before["prompt_tokens"],
           completion_tokens=b.totals["completion_tokens"] - before["completion_tokens"],
           cost_usd=round(b.totals["cost_usd"] - before["cost_usd"], 10), latency_s=round(b.t - rlm_started, 4),
           error=None, attempts=1)
    b.cell_finished(c_parent, started, stdout=answer)

    # Verification: the same prompt three times, and near-identical rephrasings.
    it += 1
    b.turn("Let me verify the code again, several times to be sure.\n\n"
           "```repl\nfor i in range(3):\n    print(llm_query(check))\n```", iteration=it)
    started = b.t
    c = b.cell("for i in range(3):\n    print(llm_query(check))\nfor v in variants:\n    print(llm_query(v))\n",
               iteration=it)
    body = b.words(80)
    check = f"Verify: is AMBER-7742 the launch code for project Heron? Passage: {body}"
    prompts = [(check, [{"doc": 0, "start": 1_500_000, "end": 1_501_200}])] * 3
    prompts += [(f"Verify: is AMBER-7742 the launch code for project Heron? ({i}) Passage: {body}",
                 [{"doc": 0, "start": 1_500_000, "end": 1_501_200}]) for i in range(4)]
    for p in prompts:
        b.batch([p], cell_id=c, responses=["Yes."], concurrency=1, finish=finished or p is not prompts[-1])
    if not finished:
        return {"run": {"status": "running", "question": QUESTION}, "documents": DOCUMENTS, "events": b.events}
    b.cell_finished(c, started, stdout="Yes.\n" * 7)

    it += 1
    b.turn("Checking the variable names.\n\n```repl\nprint(hitz)\n```", iteration=it)
    started = b.t
    c = b.cell("print(hitz)\n", iteration=it)
    b.cell_finished(c, started, error="Traceback (most recent call last):\n  line 1, in <module>\nNameError: name 'hitz' is not defined")

    it += 1
    final = "The launch code is BLUE-1234, confirmed by the archive." if final_mismatch else ANSWER
    b.turn(f"The sub-calls agree.\n\nFINAL({final})", iteration=it)
    b.emit("final.answer", answer=f"**{final}**\n\n- found in `report.txt`\n- confirmed by a child RLM",
           source="FINAL", node_id=None)
    b.totals["elapsed_s"] = round(b.t - b.t0, 3)
    b.emit("run.finished", status="succeeded", failure_reason=None, stop_reason=None, totals=dict(b.totals),
           forced_final=False)
    return {"run": {"status": "succeeded", "question": QUESTION}, "documents": DOCUMENTS, "events": b.events}


REPEATED_DOCUMENTS = [{"name": "minutes.txt", "chars": 10_000}, {"name": "boilerplate.txt", "chars": 4_000},
                      {"name": "unread.txt", "chars": 2_000}]


def make_repeated_trajectory(*, seed: int = 11, answer: str = "The budget was approved on 14 March.") -> dict:
    """A small succeeded run that read nothing relevant, with the two range shapes the engine emits:
    exact `{doc, start, end}` (two overlapping slices of minutes.txt) and ambiguous
    `{doc, chars, places}` (a block repeated in minutes.txt three times, one in boilerplate.txt twice).
    unread.txt is never read; every sub-call answers NOT FOUND (or the like); the final answer
    appears in no output."""
    b = _Builder(seed=seed, model=OFFLINE)
    b.emit("run.started", question="When was the budget approved?", mode="rlm", root_model=OFFLINE,
           sub_model=OFFLINE, limits={"max_iterations": 10, "max_depth": 1}, documents=REPEATED_DOCUMENTS,
           offline=True)
    b.turn("```repl\nprint(llm_query_batched([context[0][0:1000], context[0][500:1500], block, block, footer]))\n```")
    started = b.t
    c = b.cell("print(llm_query_batched([context[0][0:1000], context[0][500:1500], block, block, footer]))\n")
    prompts = [
        ("When was the budget approved? " + b.words(40), [{"doc": 0, "start": 0, "end": 1000}]),
        ("When was the budget approved? " + b.words(40), [{"doc": 0, "start": 500, "end": 1500}]),
        ("When was the budget approved? AGENDA ITEM: any other business", [{"doc": 0, "chars": 400, "places": 3}]),
        ("When was the budget approved? AGENDA ITEM: any other business.", [{"doc": 0, "chars": 400, "places": 3}]),
        ("When was the budget approved? Confidential footer", [{"doc": 1, "chars": 120, "places": 2}]),
    ]
    responses = ["NOT FOUND", "Not found.", "NOT FOUND", "The passage does not mention a budget.", "None."]
    b.batch(prompts, cell_id=c, responses=responses)
    b.cell_finished(c, started, stdout="['NOT FOUND', 'Not found.', 'NOT FOUND', 'The passage does not mention a budget.', 'None.']")
    b.turn(f"FINAL({answer})", iteration=2)
    b.emit("final.answer", answer=answer, source="FINAL", node_id=None)
    b.totals["elapsed_s"] = round(b.t - b.t0, 3)
    b.emit("run.finished", status="succeeded", failure_reason=None, stop_reason=None, totals=dict(b.totals),
           forced_final=False)
    return {"run": {"status": "succeeded"}, "documents": REPEATED_DOCUMENTS, "events": b.events}
