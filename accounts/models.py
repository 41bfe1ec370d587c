"""Accounts keep Django's own User and Group; this module adds their history.

The history of users (and of their group memberships, which are their roles) is
kept by django-simple-history: who changed what, when, and why. Password hashes
and sign-in times stay out of it.
"""

from django.contrib.auth import get_user_model
from simple_history import register

register(
    get_user_model(),
    app="accounts",
    excluded_fields=["password", "last_login"],
    m2m_fields=["groups"],
)
