"""Per-client JARM settings, the server's signing keys, and the version row that announces changes."""

from __future__ import annotations

import secrets
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import Q
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings

from .conf import ALL_ENCRYPTION_ALGS, ALL_ENCRYPTION_ENCS, ALL_SIGNING_ALGS, jarm_settings
from .validation import ClientMetadata, client_metadata_errors


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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # DESIGN 6.1: the version that tells every process to reload is written in the same
        # transaction as the change.
        with transaction.atomic(using=kwargs.get("using") or router.db_for_write(type(self))):
            super().save(*args, **kwargs)
            StateVersion.bump(using=self._state.db)

    @property
    def signing_alg(self) -> str:
        """The JWS algorithm this client's responses are signed with."""
        return self.authorization_signed_response_alg or jarm_settings.default_signing_alg

    @property
    def encryption_enc(self) -> str:
        return self.metadata().encryption_enc

    @property
    def is_encrypted(self) -> bool:
        return bool(self.authorization_encrypted_response_alg)

    def metadata(self) -> ClientMetadata:
        """The JARM client metadata this row stores."""
        return ClientMetadata(
            authorization_signed_response_alg=self.authorization_signed_response_alg,
            authorization_encrypted_response_alg=self.authorization_encrypted_response_alg,
            authorization_encrypted_response_enc=self.authorization_encrypted_response_enc,
            jwks=self.jwks,
            jwks_uri=self.jwks_uri,
            response_modes=self.response_modes,
            require_jarm=self.require_jarm,
        )

    def clean(self) -> None:
        application = self.application if self.application_id is not None else None
        errors = client_metadata_errors(self.metadata(), application)
        if errors:
            raise ValidationError(errors)


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

    def save(self, *args: Any, **kwargs: Any) -> None:
        with transaction.atomic(using=kwargs.get("using") or router.db_for_write(type(self))):
            super().save(*args, **kwargs)
            StateVersion.bump(using=self._state.db)


class StateVersion(models.Model):
    """One row whose ``version`` moves on with every committed change of keys or client settings.

    Each process compares it with the version of its snapshot (at most every
    ``STATE_REFRESH_SECONDS``) and reloads when it moved: a change applies everywhere within that
    bound, whatever the cache backend (DESIGN 6.1).
    """

    SINGLETON = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON)
    version = models.BigIntegerField(default=0, help_text=_("Moves on with every change of keys or client settings."))

    class Meta:
        verbose_name = _("JARM state version")

    def __str__(self) -> str:
        return f"JARM state version {self.version}"

    @classmethod
    def bump(cls, *, using: str | None = None) -> None:
        """Announce a change; call inside the transaction that makes it.

        The new version is random, never the old one plus one: after a rolled-back change a
        counter would give the next committed change the number a process may already have
        seen with the rolled-back data, and that process would never reload.
        """
        manager = cls.objects.db_manager(using)
        version = secrets.randbits(62) or 1
        if not manager.filter(pk=cls.SINGLETON).update(version=version):
            manager.update_or_create(pk=cls.SINGLETON, defaults={"version": version})

    @classmethod
    def current(cls, *, using: str | None = None) -> int:
        value = cls.objects.db_manager(using).filter(pk=cls.SINGLETON).values_list("version", flat=True).first()
        return int(value or 0)


@receiver(post_delete, sender=ClientSettings, dispatch_uid="django_jarm.client_settings.deleted")
@receiver(post_delete, sender=ServerKey, dispatch_uid="django_jarm.server_key.deleted")
def _bump_on_delete(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    # Sent inside the deletion's transaction (cascades from a deleted Application included).
    StateVersion.bump(using=using)
