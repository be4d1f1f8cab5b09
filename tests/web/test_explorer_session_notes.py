"""The explorer's trajectory model (static/explorer/model.js, run under node) folds the follow-up,
helper and compaction events into notes, and counts a child RLM's compaction in its cost."""

import json
import shutil
import subprocess
from pathlib import Path

MODEL = Path(__file__).resolve().parents[2] / "static" / "explorer" / "model.js"
NODE = shutil.which("node")

EVENTS = [
    {"seq": 1, "type": "run.started", "ts": 1.0, "data": {"question": "q", "documents": []}},
    {"seq": 2, "type": "snapshot.restored", "ts": 1.1, "data": {
        "variables": [{"name": "years", "type": "dict"}], "not_carried": [], "error": None}},
    {"seq": 3, "type": "helpers.loaded", "ts": 1.2, "data": {"helpers": [{"name": "f", "version": 2}]}},
    {"seq": 4, "type": "subcall.started", "ts": 2.0, "data": {"node_id": "n1", "kind": "rlm", "depth": 1}},
    {"seq": 5, "type": "root.turn", "ts": 2.5, "data": {"node_id": "n1", "depth": 1, "iteration": 1,
                                                         "cost_usd": 0.25, "prompt_tokens": 10, "completion_tokens": 5}},
    {"seq": 6, "type": "root.compacted", "ts": 3.0, "data": {"node_id": "n1", "depth": 1, "iteration": 2,
                                                              "cost_usd": 0.5, "prompt_tokens": 100,
                                                              "completion_tokens": 20, "tokens_before": 900,
                                                              "tokens_after": 200, "summary": "s"}},
    {"seq": 7, "type": "subcall.finished", "ts": 4.0, "data": {"node_id": "n1", "cost_usd": 0.75}},
]

SCRIPT = """
import { TrajectoryModel } from %s;
const m = new TrajectoryModel();
m.ingest(%s);
const roll = m.rollups().get("n1");
console.log(JSON.stringify({
  notes: m.notes.map((n) => [n.type, n.scope, n.seq]),
  kinds: m.drainChanges().map((c) => c.kind),
  child: { cost: roll.cost, tokens: roll.tokens },
}));
"""


def test_session_events_become_notes_and_compaction_costs_roll_up():
    assert NODE, "node runs the explorer's model in this test"
    script = SCRIPT % (json.dumps(MODEL.as_uri()), json.dumps(EVENTS))
    out = subprocess.run([NODE, "--input-type=module", "-e", script], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    result = json.loads(out)
    assert result["notes"] == [["snapshot.restored", "root", 2], ["helpers.loaded", "root", 3],
                               ["root.compacted", "n1", 6]]
    assert result["kinds"].count("note") == 3
    assert result["child"] == {"cost": 0.75, "tokens": 135}
