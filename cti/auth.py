"""Users, passwords and API tokens.

Passwords are stored as scrypt hashes (RFC 7914, Python's ``hashlib``):
``scrypt$<n>$<r>$<p>$<salt>$<hash>`` in base64.  A login returns a random
bearer token (``secrets.token_urlsafe``) valid for ``TOKEN_LIFETIME``; only
its SHA-256 is kept, in memory for the checks and in the database (through
a :class:`TokenJournal`) so that a restart logs nobody out; logout ends it,
and a password change or a user's disabling or removal ends all of that
user's.  Password checks are throttled per
user and per address (:class:`LoginThrottle`) and cost the same for an
unknown user.  Roles: agent, supervisor, campaign_manager, admin; a
supervisor may oversee some teams only (its :class:`Scope`).  Nothing here
logs a password or a token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

ROLES = ("agent", "supervisor", "campaign_manager", "admin")
#: who may do what, by role: the HTTP API's role decorator and ``User`` use these
ANY_USER = frozenset(ROLES)
SUPERVISORS = frozenset({"supervisor", "admin"})
CAMPAIGN_MANAGERS = frozenset({"supervisor", "campaign_manager", "admin"})
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


#: a hash no password matches, checked when the user does not exist, so that
#: an unknown user costs the same scrypt time as a known one (no enumeration
#: by timing: 4 ms against 95 ms before)
_DUMMY_HASH = (
    f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}$"
    f"{base64.b64encode(b'dirigent-no-user').decode()}${base64.b64encode(bytes(64)).decode()}"
)


def check_login(password: str, stored: str | None) -> bool:
    """``check_password`` against the user's hash, or the same work against
    a dummy hash when there is no such user (constant time for both)."""
    if stored is None:
        check_password(password, _DUMMY_HASH)
        return False
    return check_password(password, stored)


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
class Scope:
    """What a supervisor who oversees some teams sees and acts on: the
    teams' agents, the queues those agents serve, and the campaigns that
    dial into those queues (all as configured)."""

    teams: frozenset[str]
    agents: frozenset[str] = frozenset()
    queues: frozenset[str] = frozenset()
    campaigns: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls,
        teams: Iterable[str],
        agents: Mapping[str, tuple[str | None, Iterable[str]]],
        campaigns: Mapping[str, str],
    ) -> Scope:
        """``agents``: agent -> (team, its queues); ``campaigns``: campaign -> queue."""
        teams = frozenset(teams)
        mine = {a: queues for a, (team, queues) in agents.items() if team in teams}
        queues = frozenset(q for qs in mine.values() for q in qs)
        dialling = frozenset(c for c, q in campaigns.items() if q in queues)
        return cls(teams, frozenset(mine), queues, dialling)


@dataclass(frozen=True)
class User:
    username: str
    role: str
    agent: str | None = None
    #: a supervisor's teams (None: the whole centre, as for admins)
    scope: Scope | None = None

    def may_act_for(self, agent: str) -> bool:
        """Agents act for themselves; supervisors for the agents of their
        scope; admins for anyone."""
        if self.role in SUPERVISORS:
            return self.sees_agent(agent)
        return self.role == "agent" and self.agent == agent

    def sees_agent(self, agent: str) -> bool:
        """An agent sees itself only (another's state, work and time today
        are that agent's, as its report and its socket are: QA5 finding 7);
        a supervisor its scope; an admin everyone."""
        if self.role == "agent":
            return agent == self.agent
        return self.scope is None or self.role == "admin" or agent in self.scope.agents

    def sees_queue(self, queue: str) -> bool:
        return self.scope is None or self.role == "admin" or queue in self.scope.queues

    @property
    def campaigns_seen(self) -> frozenset[str] | None:
        """The campaigns of this user's scope (None: every campaign)."""
        return None if self.scope is None or self.role == "admin" else self.scope.campaigns

    def sees_campaign(self, campaign: str) -> bool:
        seen = self.campaigns_seen
        return seen is None or campaign in seen

    @property
    def supervises(self) -> bool:
        return self.role in SUPERVISORS

    @property
    def manages_campaigns(self) -> bool:
        return self.role in CAMPAIGN_MANAGERS


@dataclass
class _Failures:
    times: list[float]
    locked_until: float = 0.0
    lockouts: int = 0


class LoginThrottle:
    """Throttling of password checks, per user name and per client address.

    Every check in flight or failed within ``window`` seconds counts; past
    ``per_user`` (or ``per_address``) the name (address) is locked out for
    ``lockout`` seconds, doubled with each further lock-out up to
    ``max_lockout``.  A lock-out answers at once (HTTP 429 with Retry-After)
    without the scrypt work, so a burst of guesses neither gets answers nor
    slows the server (150 parallel guesses took 5.9 s of CPU and slowed
    ``/healthz`` to 2.2 s).  A success clears its user's count.  Pure: time
    comes from the injected clock."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        per_user: int = 5,
        per_address: int = 20,
        window: float = 900.0,
        lockout: float = 60.0,
        max_lockout: float = 3600.0,
        max_entries: int = 10_000,
    ) -> None:
        self.clock = clock
        self.max_entries = max_entries
        self.per_user, self.per_address = per_user, per_address
        self.window, self.lockout, self.max_lockout = window, lockout, max_lockout
        self._users: dict[str, _Failures] = {}
        self._addresses: dict[str, _Failures] = {}

    def begin(self, username: str, address: str) -> float | None:
        """Before a password check: seconds to wait (refused), or None and
        the check counts as a failure until :meth:`succeeded` says otherwise."""
        now = self.clock()
        wait = max(
            self._wait(self._users, username.casefold(), now),
            self._wait(self._addresses, address, now),
        )
        if wait > 0:
            return wait
        for table in (self._users, self._addresses):
            if len(table) >= self.max_entries:  # names tried once are forgotten once quiet
                for key in list(table):
                    self._wait(table, key, now)
        for table, key, limit in (
            (self._users, username.casefold(), self.per_user),
            (self._addresses, address, self.per_address),
        ):
            entry = table.setdefault(key, _Failures([]))
            entry.times.append(now)
            if len(entry.times) >= limit:
                entry.lockouts += 1
                entry.locked_until = now + min(
                    self.max_lockout, self.lockout * 2 ** (entry.lockouts - 1)
                )
                entry.times.clear()
        return None

    def succeeded(self, username: str, address: str) -> None:
        self._users.pop(username.casefold(), None)
        entry = self._addresses.get(address)
        if entry is not None and entry.times:
            entry.times.pop()

    def _wait(self, table: dict[str, _Failures], key: str, now: float) -> float:
        entry = table.get(key)
        if entry is None:
            return 0.0
        entry.times = [t for t in entry.times if t > now - self.window]
        if entry.locked_until > now:
            return entry.locked_until - now
        if not entry.times and entry.locked_until < now - self.window:
            del table[key]  # forgotten: the table does not grow with every name tried
        return 0.0


class TokenJournal(Protocol):
    """Where the tokens are kept across restarts (the database, by its
    writer thread): only the SHA-256 of a token is handed over, never the
    token.  Called on the reactor thread: it must not wait."""

    def token_issued(self, key: str, username: str, issued: float, expires: float) -> None: ...
    def tokens_ended(self, keys: list[str]) -> None: ...


class TokenStore:
    """The live tokens, by their SHA-256: checked in memory (every request
    and every WebSocket event asks, on the reactor thread), written through
    the ``journal`` so that a restart keeps them (:meth:`restore`)."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        lifetime: float = TOKEN_LIFETIME,
        journal: TokenJournal | None = None,
    ) -> None:
        self._clock = clock
        self._lifetime = lifetime
        self.journal = journal
        #: key -> (user, issued, expires)
        self._tokens: dict[str, tuple[User, float, float]] = {}

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def issue(self, user: User) -> str:
        token = secrets.token_urlsafe(32)
        key, now = self._key(token), self._clock()
        self._tokens[key] = (user, now, now + self._lifetime)
        if self.journal is not None:
            self.journal.token_issued(key, user.username, now, now + self._lifetime)
        return token

    def restore(self, kept: Iterable[tuple[str, User, float, float]]) -> int:
        """The tokens the last run left (key, user, issued, expires), at
        start-up; an expired one is left out.  Returns how many live."""
        now, n = self._clock(), 0
        for key, user, issued, expires in kept:
            if expires > now:
                self._tokens[key] = (user, issued, expires)
                n += 1
        return n

    def user(self, token: str | None) -> User | None:
        if not token:
            return None
        key = self._key(token)
        entry = self._tokens.get(key)
        if entry is None:
            return None
        user, _issued, expires = entry
        if expires < self._clock():
            del self._tokens[key]  # its row goes at the next start (or the next login)
            return None
        return user

    def revoke(self, token: str) -> bool:
        """End one token (logout); True if it was valid."""
        key = self._key(token)
        if self._tokens.pop(key, None) is None:
            return False
        if self.journal is not None:
            self.journal.tokens_ended([key])
        return True

    def revoke_user(self, username: str, issued_before: float | None = None) -> int:
        """End every token of ``username`` (issued before ``issued_before``,
        when given): a password change, a disabled or removed user.
        Returns how many were ended."""
        ended = [
            key
            for key, (user, issued, _expires) in self._tokens.items()
            if user.username == username and (issued_before is None or issued < issued_before)
        ]
        for key in ended:
            del self._tokens[key]
        if ended and self.journal is not None:
            self.journal.tokens_ended(ended)
        return len(ended)

    def usernames(self) -> set[str]:
        """The users holding a live token (for the revocation check)."""
        return {user.username for user, _, _ in self._tokens.values()}


def revoke_changed(
    tokens: TokenStore, credentials: Mapping[str, tuple[bool, float | None]]
) -> list[str]:
    """End the tokens the database no longer backs: of users removed or
    disabled, and those issued before a user's last password change.
    ``credentials`` is :func:`store.db.user_credentials`; returns the
    users whose tokens ended (a password is changed with ``dirigent user
    passwd`` in another process, so the server compares, it is not told)."""
    ended = []
    for name in sorted(tokens.usernames()):
        found = credentials.get(name)
        if found is None or found[0]:
            n = tokens.revoke_user(name)
        elif found[1] is not None:
            n = tokens.revoke_user(name, issued_before=found[1])
        else:
            n = 0
        if n:
            ended.append(name)
    return ended
