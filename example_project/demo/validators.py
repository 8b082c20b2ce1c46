"""The demo's OAuth2 validator."""

from __future__ import annotations

from typing import Any

from oauth2_provider.oauth2_validators import OAuth2Validator


class DemoOAuth2Validator(OAuth2Validator):
    """DOT's validator with OpenID Connect ``prompt=none`` support (DOT leaves it unimplemented).

    A logged-in user gets a silent answer (the demo does not remember consent); otherwise the
    client receives ``login_required`` (wrapped in a JWT in the JARM modes).
    """

    def validate_silent_login(self, request: Any) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def validate_silent_authorization(self, request: Any) -> bool:
        return True
