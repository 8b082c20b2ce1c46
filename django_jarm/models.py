"""Per-client JARM settings and the server's signing keys."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from .conf import (
    ALL_ENCRYPTION_ALGS,
    ALL_ENCRYPTION_ENCS,
    ALL_RESPONSE_MODES,
    ALL_SIGNING_ALGS,
    SYMMETRIC_ENCRYPTION_ALGS,
    SYMMETRIC_SIGNING_ALGS,
    jarm_settings,
)
from .exceptions import ConfigurationError

#: JWK members that only a private or symmetric key has (RFC 7518 6.2.2, 6.3.2, 6.4; RFC 8037).
PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})

#: Minimum client_secret length in octets for HMAC signing (OpenID Connect Core 16.19).
HMAC_MIN_SECRET_OCTETS = {"HS256": 32, "HS384": 48, "HS512": 64}


def _choices(values: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(value, value) for value in values]


class ClientSettings(models.Model):
    """JARM settings of one OAuth client; a client without a row gets the server defaults."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.CASCADE,
        related_name="jarm",
        verbose_name=_("application"),
    )
    authorization_signed_response_alg = models.CharField(
        _("signing algorithm"),
        max_length=10,
        blank=True,
        choices=_choices(ALL_SIGNING_ALGS),
        help_text=_(
            "JWS algorithm of this client's authorization responses. Empty: the server default "
            "(JARM['DEFAULT_SIGNING_ALG']). HS256/384/512 use the client secret as the key and need a "
            "confidential client whose secret is stored unhashed."
        ),
    )
    authorization_encrypted_response_alg = models.CharField(
        _("encryption algorithm"),
        max_length=20,
        blank=True,
        choices=_choices(ALL_ENCRYPTION_ALGS),
        help_text=_("JWE key management algorithm. Empty: responses are signed but not encrypted."),
    )
    authorization_encrypted_response_enc = models.CharField(
        _("content encryption"),
        max_length=20,
        blank=True,
        choices=_choices(ALL_ENCRYPTION_ENCS),
        help_text=_("JWE content encryption. Empty: A128CBC-HS256 when an encryption algorithm is set."),
    )
    jwks = models.JSONField(
        _("JWK Set"),
        null=True,
        blank=True,
        help_text=_('The client\'s public keys as a JWK Set ({"keys": [...]}); public members only.'),
    )
    jwks_uri = models.URLField(
        _("JWK Set URL"),
        max_length=2000,
        blank=True,
        help_text=_("HTTPS URL of the client's public JWK Set; use either this or the JWK Set."),
    )
    response_modes = models.JSONField(
        _("allowed response modes"),
        default=list,
        blank=True,
        help_text=_(
            'Response modes this client may use, e.g. ["jwt", "query.jwt"]. Empty: every mode the server supports.'
        ),
    )
    require_jarm = models.BooleanField(
        _("require JARM"),
        default=False,
        help_text=_("Refuse plain response modes (query, fragment, form_post) for this client."),
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("JARM client settings")
        verbose_name_plural = _("JARM client settings")

    def __str__(self) -> str:
        # The admin inline's heading reads "JARM settings: <client_id>".
        return str(self.application.client_id)

    @property
    def signing_alg(self) -> str:
        """The JWS algorithm this client's responses are signed with."""
        return self.authorization_signed_response_alg or jarm_settings.default_signing_alg

    @property
    def encryption_enc(self) -> str:
        if not self.authorization_encrypted_response_alg:
            return ""
        return self.authorization_encrypted_response_enc or "A128CBC-HS256"

    @property
    def is_encrypted(self) -> bool:
        return bool(self.authorization_encrypted_response_alg)

    def clean(self) -> None:
        errors: dict[str, list[Any]] = {}

        def add(field: str, message: Any) -> None:
            errors.setdefault(field, []).append(message)

        alg = self.authorization_signed_response_alg
        if alg == "none" or alg not in ("", *ALL_SIGNING_ALGS):
            add("authorization_signed_response_alg", _("Unsupported signing algorithm."))
        elif alg and alg not in jarm_settings.signing_algs:
            add(
                "authorization_signed_response_alg",
                _("%(alg)s is not enabled on this server (JARM['SIGNING_ALGS_SUPPORTED'] or the profile).")
                % {"alg": alg},
            )
        elif alg in SYMMETRIC_SIGNING_ALGS and self.application_id is not None:
            problem = hmac_secret_problem(self.application, alg)
            if problem:
                add("authorization_signed_response_alg", problem)
        if self.authorization_encrypted_response_enc and not self.authorization_encrypted_response_alg:
            # JARM 3: authorization_encrypted_response_enc requires authorization_encrypted_response_alg.
            add(
                "authorization_encrypted_response_alg",
                _("Choose an encryption algorithm, or clear the content encryption."),
            )
        encryption_alg = self.authorization_encrypted_response_alg
        if encryption_alg and encryption_alg not in jarm_settings.encryption_algs:
            add(
                "authorization_encrypted_response_alg",
                _("%(alg)s is not enabled on this server (JARM['ENCRYPTION_ALGS_SUPPORTED'] or the profile).")
                % {"alg": encryption_alg},
            )
        enc = self.authorization_encrypted_response_enc
        if enc and enc not in jarm_settings.encryption_encs:
            add(
                "authorization_encrypted_response_enc",
                _("%(enc)s is not enabled on this server (JARM['ENCRYPTION_ENCS_SUPPORTED']).") % {"enc": enc},
            )
        self._clean_encryption_key(add)
        if not isinstance(self.response_modes, list) or any(
            mode not in ALL_RESPONSE_MODES for mode in self.response_modes
        ):
            add(
                "response_modes",
                _("Give a list of response modes among: %(modes)s.") % {"modes": ", ".join(ALL_RESPONSE_MODES)},
            )
        if self.jwks not in (None, "", {}):
            problem = jwks_problem(self.jwks)
            if problem:
                add("jwks", problem)
        if self.jwks and self.jwks_uri:
            add("jwks_uri", _("Give either a JWK Set or a JWK Set URL, not both."))
        allow_http = jarm_settings.CLIENT_JWKS_ALLOW_HTTP and self.jwks_uri.startswith("http://")
        if self.jwks_uri and not self.jwks_uri.startswith("https://") and not allow_http:
            add("jwks_uri", _("The JWK Set URL must use https."))
        if errors:
            raise ValidationError(errors)

    def _clean_encryption_key(self, add: Any) -> None:
        from .client_keys import select_key

        alg = self.authorization_encrypted_response_alg
        if not alg or alg not in ALL_ENCRYPTION_ALGS or self.encryption_enc not in ALL_ENCRYPTION_ENCS:
            return  # the field's own validation reports an unknown name
        if alg in SYMMETRIC_ENCRYPTION_ALGS:
            if self.application_id is not None:
                problem = symmetric_encryption_secret_problem(self.application, alg, self.encryption_enc)
                if problem:
                    add("authorization_encrypted_response_alg", problem)
            return
        if not self.jwks and not self.jwks_uri:
            message = _("%(alg)s encrypts to the client's public key: give its JWK Set or JWK Set URL.")
            add("jwks", message % {"alg": alg})
        elif self.jwks and not jwks_problem(self.jwks):
            try:
                select_key(self.jwks, alg)
            except ConfigurationError as exc:
                add("jwks", str(exc))


def hmac_secret_problem(application: Any, alg: str) -> str:
    """Why ``application``'s client secret cannot key ``alg``, or ``""`` when it can."""
    # OpenID Connect Core 10.1 and 16.19: the raw secret is the MAC key, as long as the key.
    return _secret_problem(application, alg, HMAC_MIN_SECRET_OCTETS[alg])


def symmetric_encryption_secret_problem(application: Any, alg: str, enc: str) -> str:
    """Why ``application``'s secret cannot derive an ``alg``/``enc`` key, or ``""``."""
    from .client_keys import secret_key_octets

    try:
        needed = secret_key_octets(alg, enc)
    except ConfigurationError as exc:
        return str(exc)
    # OpenID Connect Core 10.2 and 16.19: the key is derived from the secret, which must hold
    # at least as many octets as the key.
    return _secret_problem(application, alg, needed)


def _secret_problem(application: Any, alg: str, needed: int) -> str:
    from oauth2_provider.models import AbstractApplication

    if application.client_type != AbstractApplication.CLIENT_CONFIDENTIAL:
        return str(_("%(alg)s needs a confidential client; public clients have no secret.") % {"alg": alg})
    secret = application.client_secret or ""
    if getattr(application, "hash_client_secret", True) or _is_hashed(secret):
        return str(
            _(
                "%(alg)s uses the client secret as key material, and this client stores it hashed. Turn "
                "off 'hash client secret' and set a new secret, or choose an asymmetric algorithm."
            )
            % {"alg": alg}
        )
    if len(secret.encode("utf-8")) < needed:
        return str(
            _("%(alg)s needs a client secret of at least %(n)d octets (OpenID Connect Core 16.19).")
            % {"alg": alg, "n": needed}
        )
    return ""


def _is_hashed(secret: str) -> bool:
    from django.contrib.auth.hashers import identify_hasher

    if not secret:
        return False
    try:
        identify_hasher(secret)
    except ValueError:
        return False
    return True


def jwks_problem(value: Any) -> str:
    """Why ``value`` is not an acceptable public JWK Set, or ``""``."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        return str(_('A JWK Set is a JSON object with a "keys" list.'))
    for key in value["keys"]:
        if not isinstance(key, dict) or not isinstance(key.get("kty"), str):
            return str(_('Every key needs a "kty".'))
        if PRIVATE_JWK_MEMBERS & key.keys():
            return str(_("The JWK Set holds private or symmetric key material; publish public keys only."))
        # RFC 7517 4: these members are strings (key_ops a list of strings) when present.
        for member in ("kid", "use", "alg", "crv", "n", "e", "x", "y"):
            if member in key and not isinstance(key[member], str):
                return str(_('The "%(member)s" member of a key must be a string.') % {"member": member})
        operations = key.get("key_ops")
        if operations is not None and not (
            isinstance(operations, list) and all(isinstance(operation, str) for operation in operations)
        ):
            return str(_('"key_ops" must be a list of strings.'))
    return ""


class ServerKeyQuerySet(models.QuerySet["ServerKey"]):
    def published(self) -> ServerKeyQuerySet:
        """Keys that belong in the JWK Set: next, active and retiring."""
        return self.filter(status__in=ServerKey.PUBLISHED_STATUSES)

    def active(self) -> ServerKeyQuerySet:
        return self.filter(status=ServerKey.Status.ACTIVE)


class ServerKey(models.Model):
    """A signing key of the authorization server; the private part is encrypted at rest."""

    class Status(models.TextChoices):
        NEXT = "next", _("next (published, not signing yet)")
        ACTIVE = "active", _("active (signing)")
        RETIRING = "retiring", _("retiring (published, no longer signing)")
        RETIRED = "retired", _("retired (not published)")

    PUBLISHED_STATUSES = (Status.NEXT, Status.ACTIVE, Status.RETIRING)

    kid = models.CharField(
        _("key id"), max_length=100, unique=True, help_text=_("RFC 7638 thumbprint of the public key.")
    )
    alg = models.CharField(_("algorithm"), max_length=10, help_text=_("The JWS algorithm this key signs with."))
    kty = models.CharField(_("key type"), max_length=10, help_text=_("RSA, EC or OKP."))
    crv = models.CharField(_("curve"), max_length=10, blank=True, help_text=_("Curve of EC and OKP keys."))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.NEXT, db_index=True)
    public_jwk = models.JSONField(_("public key"), help_text=_("The public JWK as published."))
    private_jwk_encrypted = models.TextField(
        editable=False,
        help_text=_("The private JWK, encrypted with a key derived from KEY_ENCRYPTION_SECRET."),
    )
    created = models.DateTimeField(_("created"), default=timezone.now)
    activated = models.DateTimeField(_("activated"), null=True, blank=True)
    retiring_since = models.DateTimeField(_("retiring since"), null=True, blank=True)
    retired = models.DateTimeField(_("retired"), null=True, blank=True)

    objects = ServerKeyQuerySet.as_manager()

    class Meta:
        verbose_name = _("JARM server key")
        verbose_name_plural = _("JARM server keys")
        ordering = ("alg", "-created")
        constraints = [
            models.UniqueConstraint(
                fields=["alg"],
                condition=Q(status="active"),
                name="django_jarm_one_active_key_per_alg",
            )
        ]

    def __str__(self) -> str:
        return f"{self.alg} {self.kid} ({self.status})"
