"""Create the first account (a superuser) if there is no user yet, and say how to sign in.

The password is written to `DATA_DIR/first-account.txt` (0600) and shown once, when the account is
created and only on a terminal: `bin/start`'s output is often a server log, which must not hold it.
"""

import os
import secrets

from django.conf import settings
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a first superuser when the database has no user; say where its login is."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username: str, **options):
        credentials = settings.DATA_DIR / "first-account.txt"
        if User.objects.exists():
            where = f"the account in {credentials}" if credentials.exists() else "yours"
            self.stdout.write(f"Sign in with {where} (or create one: `python manage.py createsuperuser`).")
            return
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email="", password=password)
        credentials.unlink(missing_ok=True)
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # never readable by others
        with os.fdopen(fd, "w") as f:
            f.write(f"username: {username}\npassword: {password}\n")
        self.stdout.write(self.style.SUCCESS(f"Created the first account, {username!r}; its login is in {credentials}."))
        if self.stdout.isatty():
            self.stdout.write(f"password: {password}  (shown once)")
        else:
            self.stdout.write("Its password is not printed here (this output is not a terminal); read it from that file.")
