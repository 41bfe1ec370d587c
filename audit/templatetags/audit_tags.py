import json
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for dicts and lists, the value itself otherwise (autoescaped by the caller)."""
    if isinstance(value, dict | list):
        return json.dumps(value, cls=DjangoJSONEncoder, indent=2, ensure_ascii=False)
    return "" if value is None else str(value)


@register.filter
def is_structured(value: Any) -> bool:
    return isinstance(value, dict | list)
