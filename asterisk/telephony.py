"""The PBX link over AMI: an :class:`AmiSession` behind Deferreds, and with
it the domain port (:class:`asterisk.port.AsteriskVoice`)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any

from twisted.internet.defer import Deferred, fail

from asterisk import actions as ami
from asterisk.errors import ActionFailed
from asterisk.events import OriginateResult
from asterisk.port import AsteriskVoice, Subscriber
from asterisk.session import AmiSession


def _deferred(coro: Coroutine[Any, Any, Any]) -> Deferred[Any]:
    return Deferred.fromFuture(asyncio.ensure_future(coro))


class AmiTelephony(AsteriskVoice):
    def __init__(self, session: AmiSession) -> None:
        self.session = session
        self.name = session.name
        self.mirror = session.mirror

    @property
    def connected(self) -> bool:
        return self.session.connected

    def subscribe(self, callback: Subscriber) -> None:
        self.session.subscribe(callback)

    def originate(
        self, channel: str, *, variables: Mapping[str, str] | None = None, **kw: Any
    ) -> Deferred[OriginateResult]:
        try:
            action = ami.originate(channel, variables=variables, **kw)
        except ami.ActionError as exc:
            return fail(exc)
        return _deferred(self.session.originate(action))

    def _send(self, build: Any, *args: Any) -> Deferred[None]:
        try:
            action = build(*args)
        except ami.ActionError as exc:
            return fail(exc)

        async def go() -> None:
            await self.session.send(action)

        return _deferred(go())

    def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> Deferred[None]:
        return self._send(ami.redirect, channel, context, exten, priority)

    def bridge(self, channel1: str, channel2: str) -> Deferred[None]:
        return self._send(ami.bridge, channel1, channel2)

    def hangup(self, channel: str, cause: int = 16) -> Deferred[None]:
        return self._send(ami.hangup, channel, cause)

    def setvar(self, channel: str, variable: str, value: str) -> Deferred[None]:
        return self._send(ami.setvar, channel, variable, value)

    def play_moh(self, channel: str, on: bool = True) -> Deferred[None]:
        return self._send(ami.play_moh if on else ami.stop_moh, channel)

    def message_send(self, to: str, body: str, sender: str | None = None) -> Deferred[None]:
        return self._send(ami.message_send, to, body, sender)

    def db_get(self, family: str, key: str) -> Deferred[str | None]:
        try:
            action = ami.db_get(family, key)
        except ami.ActionError as exc:
            return fail(exc)

        async def go() -> str | None:
            try:
                items = await self.session.send_list(action)
            except ActionFailed:  # "Database entry not found"
                return None
            return str(items[0].get("Val", "")) if items else None

        return _deferred(go())

    def db_del(self, family: str, key: str) -> Deferred[None]:
        return self._send(ami.db_del, family, key)
