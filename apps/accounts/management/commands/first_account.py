"""Create the first account (a superuser) if there is no user yet, and say how to sign in."""

import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a first superuser when the database has no user; print the login."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        credentials = settings.DATA_DIR / "first-account.txt"
        if not User.objects.exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            credentials.write_text(f"username: {username}\npassword: {password}\n")
            credentials.chmod(0o600)
            self.stdout.write(self.style.SUCCESS("Created the first account."))
        if credentials.exists():
            self.stdout.write(f"Sign in with the account in {credentials}:")
            self.stdout.write(credentials.read_text().rstrip())
        else:
            self.stdout.write("Accounts already exist; sign in with yours (or `python manage.py createsuperuser`).")
