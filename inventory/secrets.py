"""Secrets at rest: provider passwords are stored as Fernet tokens, never in clear.

The key is ``VOM_SECRETS_KEY`` (a Fernet key) when set, else one derived from ``SECRET_KEY`` with
HKDF, so a fresh ``make run`` works without extra set-up.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class SecretError(Exception):
    """A stored secret cannot be decrypted (the key changed)."""


@lru_cache(maxsize=4)
def _fernet(secret_key: str, explicit_key: str) -> Fernet:
    if explicit_key:
        return Fernet(explicit_key.encode())
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"vom-secrets", info=b"provider-credentials")
    return Fernet(base64.urlsafe_b64encode(derived.derive(secret_key.encode())))


def _key() -> Fernet:
    return _fernet(settings.SECRET_KEY, settings.VOM_SECRETS_KEY)


def encrypt(plaintext: str) -> str:
    """A token for ``plaintext``; the empty string stays empty (no secret)."""
    if not plaintext:
        return ""
    return _key().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _key().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretError("stored credentials cannot be decrypted: was the secrets key changed?") from exc
