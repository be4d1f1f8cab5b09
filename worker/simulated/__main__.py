"""Run the simulated provider as a process.

    python -m worker.simulated --port 8765 --latency 0.2 [--root-script replies.json] [--root-model gpt-4o]

Requests for the root model replay the script's assistant messages in order; every other request
gets an echo of its prompt's first line.
"""

import argparse
import json
import time
from pathlib import Path

from worker.simulated import SimulatedProvider


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each reply")
    parser.add_argument("--root-script", help="JSON list of root replies")
    parser.add_argument("--root-model", default="gpt-4o")
    args = parser.parse_args()
    replies = json.loads(Path(args.root_script).read_text()) if args.root_script else []
    provider = SimulatedProvider(root_replies=replies, root_model=args.root_model, latency_s=args.latency,
                                 host=args.host, port=args.port)
    with provider:
        print(f"Simulated provider on {provider.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
