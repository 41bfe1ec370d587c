from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.context import Actor
from config.errors import ApplicationError
from orchestration.intake import api_client_create


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


class Command(BaseCommand):
    help = (
        "Create an API client and print its token. The token is stored only hashed: this "
        "is the one time it is shown. It is alone on the last line of the output."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            type=_csv,
            default=["cases:write", "cases:read"],
            help="comma-separated: cases:write, cases:read, cases:cancel, signals:write",
        )
        parser.add_argument(
            "--workflows",
            type=_csv,
            default=["*"],
            help="comma-separated workflow slugs it may submit to (default: all)",
        )
        parser.add_argument("--owner", help="username of the person responsible for it")

    def handle(self, *args: Any, **options: Any) -> None:
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"no user {options['owner']!r}")
        try:
            client, token = api_client_create(
                name=options["name"],
                scopes=options["scopes"],
                allowed_workflows=options["workflows"],
                owner=owner,
                actor=Actor.system("create_api_client"),
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            f"Created API client {client.name!r} with scopes {', '.join(client.scopes)} "
            f"for workflows {', '.join(client.allowed_workflows)}. Its token (shown once):"
        )
        self.stdout.write(token)
