from django.core.management.base import BaseCommand

from apps.review.services import reviews_classify_pending


class Command(BaseCommand):
    help = "Classify finished runs that have no review yet (backfill); --all re-classifies every finished run."

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Re-classify runs already reviewed too.")

    def handle(self, *args, **options):
        done = reviews_classify_pending(everything=options["all"])
        self.stdout.write(f"Classified {done} run(s).")
