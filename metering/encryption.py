"""Provider secrets encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from SPENDPLANE_ENCRYPTION_KEYS, newest first; without any, one is derived from
SECRET_KEY. Rotation: prepend a new key, run `manage.py rotate_secrets`, then drop the old key.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import models


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = list(settings.SPENDPLANE_ENCRYPTION_KEYS)
    if not keys:
        derived = hashlib.sha256(b"spendplane-provider-secrets:" + settings.SECRET_KEY.encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(k) for k in keys])


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    return _fernet().decrypt(token.encode()).decode()


def rotate(token: str) -> str:
    """Re-encrypt under the newest key."""
    return _fernet().rotate(token.encode()).decode()


class EncryptedTextField(models.TextField):
    """Stores ciphertext; Python code sees plaintext."""

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value)

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value)
