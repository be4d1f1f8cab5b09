"""Run the simulated provider as a process.

    python -m worker.simulated --port 8765 --latency 0.2 [--root-script replies.json] [--root-model gpt-4o]
        [--log requests.jsonl] [--completion-tokens N] [--prompt-tokens N] [--prompt-caching]

--log appends one JSON line per finished request (model, max_tokens sent, usage billed, times):
the provider's own record to compare a run's records with. --completion-tokens / --prompt-tokens
make every call report that usage (completion clipped to the request's max_tokens), for
expensive calls. --prompt-caching emulates OpenAI's prefix caching (cached_tokens in the usage).

Requests for the root model replay the script's assistant messages in order; every other request
gets an echo of its prompt's first line.
"""

import argparse
import json
import time
from pathlib import Path

from worker.simulated import SimRequest, SimulatedProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--root-script", help="JSON list of root replies")
    parser.add_argument("--root-model", default="gpt-4o")
    parser.add_argument("--log", help="append one JSON line per finished request to this file")
    parser.add_argument("--prompt-tokens", type=int, help="report this many prompt tokens for every call")
    parser.add_argument("--completion-tokens", type=int, help="report this many completion tokens for every call")
    parser.add_argument("--prompt-caching", action="store_true",
                        help="report cached_tokens for the prefix shared with the conversation's previous request")
    args = parser.parse_args()
    replies = json.loads(Path(args.root_script).read_text()) if args.root_script else []
    usage_for = None
    if args.prompt_tokens is not None or args.completion_tokens is not None:
        def usage_for(request: SimRequest) -> tuple[int, int]:
            prompt = args.prompt_tokens if args.prompt_tokens is not None else max(1, len(request.prompt) // 4)
            return prompt, args.completion_tokens if args.completion_tokens is not None else 10
    provider = SimulatedProvider(root_replies=replies, root_model=args.root_model, latency_s=args.latency,
                                 host=args.host, port=args.port, log_path=args.log, usage_for=usage_for,
                                 prompt_caching=args.prompt_caching)
    with provider:
        print(f"Simulated provider on {provider.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
