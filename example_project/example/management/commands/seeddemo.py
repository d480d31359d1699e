"""``python manage.py seeddemo``: the demo users, ``demo``/``demo`` (staff) and ``alice``/``alice``."""

from typing import Any

from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand

USERS = ("demo", "alice")  # each one's password is its name
STAFF = ("demo",)  # may open the admin and the live dashboard, /ws-api/dashboard/


class Command(BaseCommand):
    """Create each missing demo user; running it twice changes nothing.

    An existing user keeps its password: setting it again (even to the same text) would change
    its hash and so sign every session of that user out, each time ``make demo`` starts.
    """

    help = "Create the demo users demo/demo (staff) and alice/alice, if they are missing."

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the users that are missing; leave the others as they are."""
        for username in USERS:
            user, created = User.objects.get_or_create(
                username=username, defaults={"is_staff": username in STAFF}
            )
            if created:
                user.set_password(username)
                user.save(update_fields=["password"])
                self.stdout.write(f"Created user {username} (password {username})")
            elif check_password(username, user.password):  # a pure check: no hash upgrade saved
                self.stdout.write(f"Kept user {username} (password {username})")
            else:
                self.stdout.write(f"Kept user {username} (its password was changed; not reset)")
