"""The consent form: DOT's AllowForm plus a hidden ``response_mode``."""

from __future__ import annotations

from typing import Any

import pytest
from django import forms

from django_jarm.forms import JARMAllowForm
from tests.conftest import REDIRECT_URI


@pytest.fixture
def make_form() -> Any:
    """Factory of bound consent forms for ``client_id`` with ``fields`` overriding the defaults."""

    def make(client_id: str, **fields: str) -> JARMAllowForm:
        data = {
            "redirect_uri": REDIRECT_URI,
            "scope": "openid read",
            "client_id": client_id,
            "state": "af0ifjsldkj",
            "response_type": "code",
            "response_mode": "query.jwt",
            "allow": "Authorize",
            **fields,
        }
        return JARMAllowForm(data=data)

    return make


def test_response_mode_is_an_optional_hidden_field():
    field = JARMAllowForm.base_fields["response_mode"]
    assert isinstance(field, forms.CharField)
    assert isinstance(field.widget, forms.HiddenInput)
    assert field.required is False


def test_response_mode_is_rendered_as_a_hidden_input():
    form = JARMAllowForm(initial={"response_mode": "form_post.jwt"})
    html = str(form["response_mode"])
    assert html == '<input type="hidden" name="response_mode" value="form_post.jwt" id="id_response_mode">'


def test_response_mode_value_is_escaped():
    form = JARMAllowForm(initial={"response_mode": '"><script>'})
    assert 'value="&quot;&gt;&lt;script&gt;"' in str(form["response_mode"])


@pytest.mark.django_db
def test_valid_form_keeps_the_response_mode(make_app, make_form):
    app = make_app()
    form = make_form(app.client_id)
    assert form.is_valid(), form.errors
    assert form.cleaned_data["response_mode"] == "query.jwt"
    assert form.cleaned_data["client_id"] == app.client_id


@pytest.mark.django_db
def test_missing_response_mode_is_empty(make_app, make_form):
    app = make_app()
    form = make_form(app.client_id, response_mode="")
    assert form.is_valid(), form.errors
    assert form.cleaned_data["response_mode"] == ""


@pytest.mark.django_db
def test_unknown_client_id_is_a_form_error(make_app, make_form):
    make_app()
    form = make_form("no-such-client")
    assert not form.is_valid()
    assert form.errors == {"client_id": ["Unknown client."]}
    assert form.errors.as_data()["client_id"][0].code == "invalid_client"


@pytest.mark.django_db
def test_missing_client_id_is_a_required_error(make_form):
    form = make_form("")
    assert form.errors == {"client_id": ["This field is required."]}
