"""Accounts keep Django's own User and Group; this module adds their history.

The history of users is kept by django-simple-history: who changed what, when,
and why. Password hashes and sign-in times stay out of it.
"""

from django.contrib.auth import get_user_model
from simple_history import register

from audit.history import history_user

# Group memberships (roles) are not tracked here: simple-history's m2m tracking
# fails when a membership changes from the group's side (group.user_set.remove),
# so role changes are recorded as audit events (accounts.signals), from either side.
register(
    get_user_model(),
    app="accounts",
    excluded_fields=["password", "last_login"],
    get_user=history_user,
)
