import sys

from django.core.management.base import BaseCommand

from apps.review.export import export_lines
from apps.review.selectors import review_filter, review_list


class Command(BaseCommand):
    help = "Export reviewed runs as JSONL (question, documents' hashes, settings, every event, review, feedback)."

    def add_arguments(self, parser):
        parser.add_argument("--out", required=True, help="File to write; '-' for standard output.")
        parser.add_argument("--outcome", help="Outcome class, e.g. budget_exceeded_cost.")
        parser.add_argument("--pattern", help="Pattern name, e.g. verification_loop.")
        parser.add_argument("--model", help="Root or sub model.")
        parser.add_argument("--mode", help="rlm, rlm-no-subcalls or direct.")
        parser.add_argument("--team", help="Team id.")
        parser.add_argument("--cost", help="Cost bucket: free, lt_0_01, 0_01_0_1, 0_1_1, gte_1.")
        parser.add_argument("--feedback", help="down, up or none.")
        parser.add_argument("--state", help="new, triaged, resolved or wontfix.")
        parser.add_argument("--label", help="Label name.")
        parser.add_argument("--since", help="First day (YYYY-MM-DD) the runs were created.")
        parser.add_argument("--until", help="Last day (YYYY-MM-DD) the runs were created.")
        parser.add_argument("--q", help="Text in the question or the answer.")

    def handle(self, *args, **options):
        params = {k: v for k, v in options.items() if v is not None}
        runs = (review.run for review in review_filter(review_list(), params).iterator(chunk_size=200))
        count = 0
        out = sys.stdout if options["out"] == "-" else open(options["out"], "w", encoding="utf-8")  # noqa: SIM115
        try:
            for line in export_lines(runs):
                out.write(line)
                count += 1
        finally:
            if out is not sys.stdout:
                out.close()
        self.stderr.write(f"Exported {count} run(s).")
