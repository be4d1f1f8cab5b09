"""Prompt-caching benchmark: the root's input cost over a 20-turn run, cached against uncached.

    python benchmarks/bench_caching.py

The same scripted 20-turn run (each turn a short note and a cell printing ~1,500 characters of the
document, so the root's history grows by ~450 tokens a turn) goes through the real path: litellm
over HTTP to the simulated OpenAI-compatible provider, the sandboxed REPL, the event emitter. The
provider runs once with OpenAI-style prefix caching emulated (cached_tokens for the prefix shared
with the conversation's previous request, in 128-token blocks above 1,024 tokens) and once without
(the baseline), for each model. Costs are litellm's prices for the usage the provider reports, so
the figures do not depend on the machine's load.

Root input cost = the root turns' cost minus their completion tokens at the output price.
Writes benchmarks/results/caching.json.
"""

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import litellm  # noqa: E402

from worker.engine import DocumentInput, Limits, ModelOptions, RunSpec, run  # noqa: E402
from worker.engine.events import ListSink  # noqa: E402
from worker.simulated import SimulatedProvider  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TURNS = 20
# gpt-4o reads its cache at 50 % of the input price, gpt-4.1 at 25 %, gpt-5 at 10 %.
MODELS = ("openai/gpt-4o", "openai/gpt-4.1", "openai/gpt-5")
KEY_ENV = "RLMWEB_BENCH_PROVIDER_KEY"


def replies() -> list[str]:
    out = [f"Looking at part {t}.\n\n```repl\npart{t} = context[{t * 1500}:{(t + 1) * 1500}]\nprint(part{t})\n```"
           for t in range(TURNS - 1)]
    out.append("```repl\nFINAL('done')\n```")
    return out


def one_run(model: str, doc: DocumentInput, caching: bool) -> dict:
    sink = ListSink()
    with SimulatedProvider(root_model=model.split("/", 1)[1], root_replies=replies(), prompt_caching=caching) as sp:
        options = {model: ModelOptions(api_base=sp.base_url, api_key_env=KEY_ENV, timeout_s=30)}
        spec = RunSpec(question="benchmark", documents=[doc], root_model=model, sub_model=model,
                       limits=Limits(max_iterations=TURNS, max_cost_usd=None), model_options=options)
        result = run(spec, sink)
    if result.status != "succeeded" or result.iterations != TURNS:
        raise SystemExit(f"benchmark run failed: {result.status} {result.failure_reason} ({result.iterations} turns)")
    output_price = litellm.get_model_info(model)["output_cost_per_token"]
    turns = [e.data for e in sink.of_type("root.turn")]
    totals = sink.events[-1].data["totals"]
    return {
        "turns": len(turns),
        "prompt_tokens": sum(t["prompt_tokens"] for t in turns),
        "cached_tokens": sum(t["cached_tokens"] for t in turns),
        "input_cost_usd": round(sum(t["cost_usd"] - t["completion_tokens"] * output_price for t in turns), 8),
        "cost_usd": result.cost_usd,
        "cache_saving_usd": totals["cache_saving_usd"],
    }


def main() -> None:
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "doc.txt"
        text = "".join(f"Record {i}: the value of item {i} is {i * 7 % 1000}. " for i in range(3000))
        path.write_text(text)
        doc = DocumentInput("doc.txt", str(path), len(text))
        for model in MODELS:
            info = litellm.get_model_info(model)
            uncached = one_run(model, doc, caching=False)
            cached = one_run(model, doc, caching=True)
            rows[model] = {
                "cache_read_over_input_price": round(info["cache_read_input_token_cost"] / info["input_cost_per_token"], 3),
                "uncached": uncached, "cached": cached,
                "input_cost_ratio": round(cached["input_cost_usd"] / uncached["input_cost_usd"], 3),
                "cached_share_of_prompt_tokens": round(cached["cached_tokens"] / cached["prompt_tokens"], 3),
            }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "caching.json").write_text(json.dumps({"turns": TURNS, "models": rows}, indent=2) + "\n")
    print(f"Root input cost of a {TURNS}-turn run (history grows ~450 tokens a turn), provider prefix cache on vs off:")
    print()
    print("| root model | cache read / input price | prompt tokens cached | input cost uncached | cached | ratio |")
    print("|---|---|---|---|---|---|")
    for model, r in rows.items():
        print(f"| {model} | {r['cache_read_over_input_price']:.0%} | {r['cached_share_of_prompt_tokens']:.0%} "
              f"| ${r['uncached']['input_cost_usd']:.4f} | ${r['cached']['input_cost_usd']:.4f} "
              f"| **{r['input_cost_ratio']:.0%}** |")


if __name__ == "__main__":
    main()
