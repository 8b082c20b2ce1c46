from django import template

from ..verify import shorten as _shorten

register = template.Library()


@register.filter
def shorten(value: object, keep: int = 8) -> str:
    """The first characters of a secret and an ellipsis."""
    return _shorten(value, int(keep))
