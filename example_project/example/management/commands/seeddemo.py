"""``python manage.py seeddemo``: the demo users, ``demo``/``demo`` (staff) and ``alice``/``alice``."""

from typing import Any

from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

USERS = ("demo", "alice")  # each one's password is its name
STAFF = ("demo",)  # may open the admin and the live dashboard, /ws-api/dashboard/


class Command(BaseCommand):
    """Create (or reset the password of) each demo user; running it twice changes nothing."""

    help = "Create the demo users demo/demo (staff) and alice/alice."

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the users that are missing and reset the passwords of the others."""
        for username in USERS:
            user, created = User.objects.get_or_create(username=username)
            user.set_password(username)
            user.is_staff = username in STAFF
            user.save()
            self.stdout.write(f"{'Created' if created else 'Kept'} user {username} (password {username})")
