"""``POST /api/login`` and ``POST /api/logout``: bearer tokens for users.

A login is throttled per user and per address before any password work
(429 with Retry-After); the scrypt check runs in a thread, with the same
cost for an unknown user (no enumeration by timing).
"""

from __future__ import annotations

import math

from klein import Klein
from twisted.internet import threads
from twisted.web.server import Request

from cti.auth import User, check_login
from cti.errors import ApiError
from cti.http.context import ApiContext, read_body, route
from cti.schemas import LoginAnswer, LoginRequest, LogoutAnswer, parse


def register(app: Klein, api: ApiContext) -> None:
    @route(app, "/login", "POST")
    async def login(request: Request) -> LoginAnswer:
        body = parse(LoginRequest, read_body(request))
        address = getattr(request.getClientAddress(), "host", "?")
        wait = api.throttle.begin(body.username, address)
        if wait is not None:
            request.setHeader(b"retry-after", str(math.ceil(wait)).encode())
            raise ApiError(
                429, "login", f"too many failed logins: try again in {math.ceil(wait)} s"
            )

        def check() -> User | None:
            found = api.users(body.username)
            # the same scrypt work for an unknown user: no enumeration by timing
            if not check_login(body.password, found[1] if found else None):
                return None
            return found[0] if found else None

        user = await threads.deferToThread(check)
        if user is None:
            raise ApiError(401, "password", "unknown user or wrong password")
        api.throttle.succeeded(body.username, address)
        return LoginAnswer(token=api.tokens.issue(user), role=user.role, agent=user.agent)

    @route(app, "/logout", "POST")
    @api.requires()
    def logout(request: Request, user: User) -> LogoutAnswer:
        api.tokens.revoke(api.token(request) or "")
        return LogoutAnswer(logged_out=user.username)
