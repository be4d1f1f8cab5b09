from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.review.export import ImportFailed, import_lines
from apps.teams.models import Team


class Command(BaseCommand):
    help = "Import a JSONL export of runs into a team: each line becomes a run viewable in the explorer."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--team", required=True, type=int, help="Id of the team that gets the runs.")
        parser.add_argument("--user", help="Username recorded as the runs' creator.")

    def handle(self, *args, **options):
        team = Team.objects.filter(pk=options["team"]).first()
        if team is None:
            raise CommandError(f"No team with id {options['team']}.")
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No user {options['user']!r}.")
        try:
            with open(options["file"], "rb") as handle:
                runs = import_lines(handle, team, user, source=options["file"])
        except (OSError, ImportFailed) as exc:
            raise CommandError(str(exc)) from exc
        for run in runs:
            self.stdout.write(f"{run.pk} {run.status} {run.question[:60]}")
        self.stderr.write(f"Imported {len(runs)} run(s) into team {team.pk}.")
