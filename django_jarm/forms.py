"""DOT's consent form plus the requested ``response_mode``."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _
from oauth2_provider.models import get_application_model

from ._compat import AllowForm


class JARMAllowForm(AllowForm):
    """The consent form; carries ``response_mode`` so the POST answers in the requested mode.

    The value is re-validated on POST like every other hidden field (it can be tampered with).
    """

    response_mode = forms.CharField(required=False, widget=forms.HiddenInput())
    # RFC 6749 4.1.2: state goes back exactly as received (DOT's fields strip whitespace);
    # OpenID Connect Core 3.1.2.1: so does the nonce, into the ID token.
    state = forms.CharField(required=False, strip=False, widget=forms.HiddenInput())
    nonce = forms.CharField(required=False, strip=False, widget=forms.HiddenInput())

    def clean_client_id(self) -> str:
        client_id: str = self.cleaned_data["client_id"]
        if not get_application_model().objects.filter(client_id=client_id).exists():
            raise forms.ValidationError(_("Unknown client."), code="invalid_client")
        return client_id
