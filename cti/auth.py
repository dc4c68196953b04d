"""Users, passwords and API tokens.

Passwords are stored as scrypt hashes (RFC 7914, Python's ``hashlib``):
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` in base64.  A login returns a random
bearer token (``secrets.token_urlsafe``) valid for ``TOKEN_LIFETIME``; only
its SHA-256 is kept in memory.  Roles: agent, supervisor, campaign_manager,
admin.  Nothing here logs a password or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

ROLES = ("agent", "supervisor", "campaign_manager", "admin")
#: scrypt cost: n=2**14, r=8, p=1 (the parameters RFC 7914 and OWASP suggest
#: for interactive logins; about 50 ms here).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
TOKEN_LIFETIME = 12 * 3600.0


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p)
        )
        return hmac.compare_digest(got, base64.b64decode(digest))
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True)
class User:
    username: str
    role: str
    agent: str | None = None

    def may_act_for(self, agent: str) -> bool:
        """Agents act for themselves; supervisors and admins for anyone."""
        return self.role in ("supervisor", "admin") or (
            self.role == "agent" and self.agent == agent
        )

    @property
    def supervises(self) -> bool:
        return self.role in ("supervisor", "admin")

    @property
    def manages_campaigns(self) -> bool:
        return self.role in ("supervisor", "campaign_manager", "admin")


class TokenStore:
    def __init__(
        self, clock: Callable[[], float] = time.time, lifetime: float = TOKEN_LIFETIME
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self._tokens: dict[str, tuple[User, float]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        self._tokens[self._key(token)] = (user, self._clock() + self._lifetime)
        return token

    def user(self, token: str | None) -> User | None:
        if not token:
            return None
        entry = self._tokens.get(self._key(token))
        if entry is None:
            return None
        user, expires = entry
        if expires < self._clock():
            del self._tokens[self._key(token)]
            return None
        return user

    def revoke(self, token: str) -> None:
        self._tokens.pop(self._key(token), None)
