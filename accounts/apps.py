from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People and roles: sign-in, the role groups, the role-aware home, demo users."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
