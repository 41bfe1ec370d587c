from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import Any

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from audit.context import Actor, audit_context


class Command(BaseCommand):
    help = (
        "Create the demo world: users, and whatever each app contributes through a "
        "`seed_demo(log)` function in its `seed` module. Safe to run again: nothing is "
        "created twice."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        # Apps are seeded in INSTALLED_APPS order, which lists the lowest layer first,
        # so each app finds what it builds on.
        with audit_context(actor=Actor.system("seed_demo")):
            self._seed_all()
        self.stdout.write(self.style.SUCCESS("Demo data is in place."))

    def _seed_all(self) -> None:
        for config in apps.get_app_configs():
            module_name = f"{config.name}.seed"
            if importlib.util.find_spec(module_name) is None:
                continue
            module = importlib.import_module(module_name)
            with transaction.atomic():
                module.seed_demo(log=functools.partial(self._log, config.label))

    def _log(self, app_label: str, line: str) -> None:
        self.stdout.write(f"[{app_label}] {line}")
