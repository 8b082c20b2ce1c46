from importlib.util import find_spec

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class RelyingPartyConfig(AppConfig):
    name = "example_project.relying_party"
    verbose_name = "Demo relying party"

    def ready(self) -> None:
        if find_spec("joserfc") is None:
            raise ImproperlyConfigured(
                'The demo relying party verifies responses with joserfc: pip install -e ".[demo]"'
            )
