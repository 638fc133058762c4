"""API keys: each key belongs to a tenant; only hashes are kept in memory.

``GMM_API_KEYS`` is a comma-separated list of ``tenant:key`` or, to keep raw
keys out of the deployment, ``tenant:sha256:<hex digest of the key>``
(``gmm-service hash-key KEY`` prints the digest). Unset, the service is open
and everything belongs to the ``public`` tenant.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from .db.tables import PUBLIC_TENANT

__all__ = ["KeyRing", "hash_key"]

_TENANT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyRing:
    """Key digests and the tenant each one opens."""

    digests: dict[str, str] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return bool(self.digests)

    @classmethod
    def parse(cls, setting: str | None) -> KeyRing:
        digests: dict[str, str] = {}
        for entry in (setting or "").split(","):
            entry = entry.strip()
            if not entry:
                continue
            tenant, sep, secret = entry.partition(":")
            if not sep or not tenant or not secret or not set(tenant) <= _TENANT_CHARS:
                raise ValueError(
                    "GMM_API_KEYS entries are tenant:key or tenant:sha256:<hex>; "
                    f"tenant names use letters, digits, _ . - (got {tenant!r})"
                )
            if secret.startswith("sha256:") and len(secret) == 71:
                digest = secret.removeprefix("sha256:").lower()
            else:
                digest = hash_key(secret)
            digests[digest] = tenant
        return cls(digests)

    def tenant_for(self, authorization: str | None) -> str | None:
        """The tenant of a ``Bearer`` key, or None if it opens nothing."""
        if not self.enabled:
            return PUBLIC_TENANT
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        offered = hash_key(token.strip())
        for digest, tenant in self.digests.items():
            if hmac.compare_digest(digest, offered):
                return tenant
        return None
