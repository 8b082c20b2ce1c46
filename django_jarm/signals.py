"""Signals. Their arguments never carry codes, tokens, JWTs, state values, secrets or keys."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent after an authorization response has been built, JWT mode or not.
#: Arguments: ``request``, ``client_id``, ``response_mode`` (the mode delivered), ``alg`` and
#: ``kid`` of the signature (``None`` in plain modes), ``encrypted`` (bool), and ``error`` (the
#: OAuth error code delivered, or ``None`` for a success).
response_issued = Signal()

#: Sent after ``rotate_server_keys`` committed. Argument: ``rotation``, a
#: :class:`django_jarm.keys.Rotation` (algorithm and the kids that changed status).
server_key_rotated = Signal()
