"""One AMI session per PBX: connect, log in, keep alive, reconnect, resync.

Built on panoramisk's protocol (action/response correlation, list actions),
with the gaps that ``../shared/STYLE.md`` lists closed around it:

* **No replays.**  panoramisk's ``AMIProtocol.close`` puts unanswered actions
  on a queue that its ``Manager`` re-sends after the next ``FullyBooted``; a
  replayed Originate dials a customer twice.  :class:`_Protocol` fails every
  action in flight with :class:`ActionOutcomeUnknown` instead, and we do not
  use panoramisk's ``Manager`` at all (its fixed 2 s reconnect is replaced by
  capped exponential backoff with jitter).
* **Half-open links.**  A keepalive ``Ping`` must be answered within
  ``keepalive_timeout``; otherwise the transport is closed and we reconnect.
* **Robust framing.**  Bytes go through :class:`asterisk.framing.AmiFramer`
  (CRLF or LF, UTF-8 split across reads, bounded sizes); a bad message is
  logged, counted and skipped.
* **Fast events.**  Events that are not part of an action's answer are
  normalised straight from the framed headers into domain events, without
  building panoramisk ``Message`` objects (see docs/benchmarks.md).
* **ActionIDs unique across processes.**  ``OriginateResponse`` goes to every
  AMI session and may come minutes late; a restarted process whose counter
  began at 1 again took its predecessor's late responses as its own answers
  (issue 14, finding 3).  ActionIDs carry a random token per session object
  (``dirigent-<pbx>-<token>-<n>``), and a response is only accepted for the
  channel we created (see :mod:`asterisk.originate`).
* **One resync per login.**  Asterisk sends ``FullyBooted`` after every login
  (``action_login``, main/manager.c) when it is booted, and once more as a
  broadcast when a login came in during boot.  The session resyncs once,
  after that ``FullyBooted`` (waiting at most ``boot_wait``); only if it had
  to resync without it does a later ``FullyBooted`` (the real end of a boot)
  cause a second one.

Secrets are never logged: the Login action is sent but never formatted into
a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panoramisk.actions import Action as PanoramiskAction
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from asterisk import actions as ami
from asterisk.errors import (
    ActionFailed,
    ActionOutcomeUnknown,
    AmiError,
    LoginFailed,
    MissingPermission,
    NotConnected,
    PbxOwned,
)
from asterisk.events import (
    OriginateResponse,
    OriginateResult,
    PbxConnected,
    PbxDisconnected,
    PbxEvent,
    PbxShutdown,
    ResyncCompleted,
    normalize,
)
from asterisk.framing import NEED_DATA, AmiFramer, AmiMessage, BadMessage, Banner, encode_message
from asterisk.metrics import AmiMetrics
from asterisk.mirror import ChannelMirror, ChannelSnapshot
from asterisk.originate import CAUSE_GRACE_SECONDS, OriginateTracker

log = logging.getLogger("dirigent.asterisk")


@dataclass(frozen=True)
class PbxSettings:
    """How to reach one PBX.  ``secret`` is never logged or shown in repr."""

    name: str
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "dirigent"
    secret: str = field(default="", repr=False)
    connect_timeout: float = 5.0
    keepalive_interval: float = 10.0
    keepalive_timeout: float = 5.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    action_timeout: float = 10.0
    #: Events dropped at the PBX (``Action: Filter``); VarSet is the bulk of a
    #: dialer's event stream (29 of 77 events per call in the recordings).
    exclude_events: tuple[str, ...] = ()
    #: How long after login to wait for ``FullyBooted`` before resyncing
    #: anyway (an AMI user without ``read = system`` never gets it).  A login
    #: during boot gets it when the boot ends (~25 ms after login in
    #: shutdown.ami; a PBX with many modules takes seconds).
    boot_wait: float = 10.0
    #: Who this Dirigent is, for the PBX's lease (one Dirigent per PBX): a
    #: second instance that finds the lease held by a live other owner stays
    #: off the PBX and says why; empty: no lease (tests, tools).
    owner: str = ""
    #: take the PBX over although another Dirigent holds its lease
    takeover: bool = False
    #: seconds a lease lasts unless renewed (renewed with every keepalive)
    lease_seconds: float = 60.0
    #: seconds between writing a new lease and reading it back: two Dirigents
    #: that read it free at the same moment both write it, and only the
    #: later write is the lease (AMI has no compare-and-set); a write
    #: follows its read by one AMI round trip, far less than this
    lease_settle: float = 0.25
    #: seconds to wait for the login's probe ``UserEvent`` to come back: the
    #: dialplan speaks to Dirigent in UserEvents (inbound calls, AMD), which
    #: an AMI user without ``read`` class ``user`` never receives
    probe_timeout: float = 5.0


#: the UserEvent Dirigent sends itself after login (see :meth:`AmiSession._probe`)
PROBE_EVENT = "DirigentProbe"
#: where the PBX's lease lives in its AstDB (``database show dirigent``)
LEASE_FAMILY, LEASE_KEY = "dirigent", "owner"


def backoff_delay(attempt: int, initial: float, maximum: float, rng: random.Random) -> float:
    """Capped exponential backoff with "full jitter" (AWS architecture blog,
    *Exponential Backoff And Jitter*, 2015): uniform in [0, min(cap, base·2^n)].
    Jitter spreads the reconnects of many servers after a PBX restart."""
    ceiling = min(maximum, initial * (2 ** min(attempt, 30)))
    return rng.uniform(initial / 2, max(initial / 2, ceiling))


class _Protocol(AMIProtocol):
    """panoramisk's protocol, fed by our framer, never re-queueing actions."""

    #: set by panoramisk's connection_made, true once the transport is closed
    closed: bool

    def __init__(self, session: AmiSession) -> None:
        self._session = session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.framer = AmiFramer()
        self.factory = self._session
        self.log = log
        self.encoding = "utf-8"
        self.banner: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        #: set by this connection's FullyBooted (it can arrive with the Login
        #: answer, before the session has looked at the login's result)
        self.fully_booted = asyncio.Event()
        #: list actions in flight: ActionID -> (future, messages so far).  Items
        #: are collected here as framed, not as panoramisk Messages (resync of
        #: 10,000 channels: see docs/benchmarks.md).
        self.lists: dict[str, tuple[asyncio.Future[list[AmiMessage]], list[AmiMessage]]] = {}
        #: the login's probe UserEvents in flight: token -> its arrival
        self.probes: dict[str, asyncio.Future[None]] = {}

    def data_received(self, data: bytes) -> None:
        framer = self.framer
        framer.receive_data(data)
        session = self._session
        responses = self.responses
        while (item := framer.next_message()) is not NEED_DATA:
            if type(item) is AmiMessage:
                aid = item.action_id
                if aid is not None and aid in self.lists:
                    self._list_message(aid, item)
                elif item.event == "OriginateResponse":
                    # an event for every session, never an action's answer: one
                    # echoing an ActionID we have in flight (a stray of another
                    # process) must not complete that action
                    session._on_event(item)
                elif aid is not None and aid in responses:
                    self.handle_message(_to_panoramisk(item))
                elif item.event is not None:
                    if item.event == "FullyBooted":
                        self.fully_booted.set()
                    elif item.event == "UserEvent" and item.get("UserEvent") == PROBE_EVENT:
                        probe = self.probes.pop(item.get("Token") or "", None)
                        if probe is not None and not probe.done():
                            probe.set_result(None)
                        continue  # ours alone: not an event of the PBX's calls
                    session._on_event(item)
                else:
                    log.debug("%s: response for no pending action dropped", session.name)
            elif isinstance(item, Banner):
                if not self.banner.done():
                    self.banner.set_result(item.version)
            elif isinstance(item, BadMessage):
                session._on_bad_message(item)

    def _list_message(self, aid: str, message: AmiMessage) -> None:
        future, items = self.lists[aid]
        items.append(message)
        first = len(items) == 1
        done = (
            first and (message.response != "Success" or message.get("EventList") is None)
        ) or message.get("EventList") == "Complete"
        if done:
            del self.lists[aid]
            if not future.done():
                future.set_result(items)

    def send_list(
        self, headers: list[tuple[str, str]], action_id: str
    ) -> asyncio.Future[list[AmiMessage]]:
        future: asyncio.Future[list[AmiMessage]] = asyncio.get_running_loop().create_future()
        self.lists[action_id] = (future, [])
        self.transport.write(encode_message(headers))
        return future

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(str(exc) if exc else "closed by peer")
        self.close()

    def close(self) -> None:
        """Fail everything in flight; nothing goes to panoramisk's replay queue."""
        pending = {id(a): a for a in self.responses.values()}
        self.responses.clear()
        for act in pending.values():
            if not act.future.done():
                act.future.set_exception(ActionOutcomeUnknown(str(act.get("Action", "?"))))
        lists, self.lists = self.lists, {}
        for future, _ in lists.values():
            if not future.done():
                future.set_exception(ActionOutcomeUnknown("list action"))
        if not self.closed:
            self.closed = True
            self.transport.close()

    def send_headers(self, headers: list[tuple[str, str]], as_list: bool) -> asyncio.Future[Any]:
        act = PanoramiskAction(headers_dict(headers), as_list=as_list)
        return self.send(act, as_list=as_list)


def headers_dict(headers: list[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in headers:
        if key in out:
            prev = out[key]
            out[key] = [*prev, value] if isinstance(prev, list) else [prev, value]
        else:
            out[key] = value
    return out


def _to_panoramisk(message: AmiMessage) -> Message:
    return Message(headers_dict(list(message.headers)))


def from_panoramisk(message: Message) -> AmiMessage:
    pairs: list[tuple[str, str]] = []
    for key, value in message.items():
        if isinstance(value, list):
            pairs.extend((key, v) for v in value)
        else:
            pairs.append((key, value))
    return AmiMessage(tuple(pairs))


Subscriber = Callable[[PbxEvent], None]


class AmiSession:
    """A self-healing AMI session to one PBX, with its channel mirror.

    ``start()`` returns at once; the session connects in the background and
    keeps trying with backoff, so the service starts even when no PBX is
    reachable.  Subscribers receive every domain event, the session's own
    (connected, disconnected, resync completed, originate results) included.
    """

    def __init__(
        self,
        settings: PbxSettings,
        *,
        metrics: AmiMetrics | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.name = settings.name
        self.metrics = metrics
        self.mirror = ChannelMirror(settings.name)
        self.tracker = OriginateTracker(settings.name)
        self._rng = rng or random.Random()
        #: why this Dirigent stays off the PBX (its lease is another's), or None
        self.refused: str | None = None
        self._refused_by: str | None = None
        self._monotonic = monotonic
        self._subscribers: list[Subscriber] = []
        self._protocol: _Protocol | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        #: "logged off" is in the log (said once, by whichever sees it first)
        self._logoff_said = False
        self._logged_in = asyncio.Event()
        self._originates: dict[str, asyncio.Future[OriginateResult]] = {}
        self._resync_buffer: list[AmiMessage] | None = None
        self._event_counters: dict[str, Any] = {}
        #: random per session object: two processes (or a process and the one
        #: before its restart) never send the same ActionID
        self.instance_token = secrets.token_hex(4)
        self._action_seq = 0
        self.connects = 0
        self.version: str | None = None

    # -- public API ---------------------------------------------------------------
    def subscribe(self, callback: Subscriber) -> None:
        self._subscribers.append(callback)

    @property
    def connected(self) -> bool:
        return self._logged_in.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self._logged_in.wait(), timeout)

    def start(self) -> None:
        if self._runner is None:
            self._stopping = self._logoff_said = False
            self._runner = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Log off cleanly (if connected) and stop reconnecting."""
        self._stopping = True
        proto = self._protocol
        if proto is not None and self.connected:
            if self.settings.owner:  # a clean stop frees the PBX for a successor at once
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(
                        self._send(proto, ami.db_del(LEASE_FAMILY, LEASE_KEY)), 2.0
                    )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._send(proto, ami.logoff()), 2.0)
                # said here too: the runner, cancelled below, may not see the link close
                self._said_logged_off()
        if proto is not None:
            proto.close()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None

    def _said_logged_off(self) -> None:
        if not self._logoff_said:
            self._logoff_said = True
            log.info("PBX %s: logged off", self.name)

    async def send(self, action: ami.Action) -> AmiMessage:
        """Send one action and return its response; raise on ``Error``."""
        proto = self._require()
        return await self._send(proto, action)

    async def send_list(self, action: ami.Action) -> list[AmiMessage]:
        """Send a list action; return its items (without start/complete)."""
        proto = self._require()
        return await self._send_list(proto, action)

    async def originate(self, action: ami.Action) -> OriginateResult:
        """Send an async Originate and wait for its classified result.

        Raises :class:`ActionFailed` if Asterisk refuses it outright, and
        :class:`ActionOutcomeUnknown` if the link drops before the result.
        """
        if action.name != "Originate":
            raise ValueError("originate() takes an Originate action")
        proto = self._require()
        action_id = self._new_action_id()
        channel_id = dict(action.headers).get("ChannelId")
        result: asyncio.Future[OriginateResult] = asyncio.get_running_loop().create_future()
        self._originates[action_id] = result
        self.tracker.expect(action_id, channel_id)
        try:
            await self._send(proto, action, action_id=action_id)
        except BaseException:
            self._originates.pop(action_id, None)
            self.tracker.forget(action_id)
            raise
        return await result

    # -- internals: connection loop ---------------------------------------------------
    def _require(self) -> _Protocol:
        if self._protocol is None or not self.connected:
            raise NotConnected(f"PBX {self.name} is not connected")
        return self._protocol

    @property
    def action_id_prefix(self) -> str:
        """What every ActionID of this session starts with."""
        return f"dirigent-{self.name}-{self.instance_token}-"

    def _new_action_id(self) -> str:
        self._action_seq += 1
        return f"{self.action_id_prefix}{self._action_seq}"

    async def _run(self) -> None:
        attempt = 0
        s = self.settings
        loop = asyncio.get_running_loop()
        while not self._stopping:
            if self.connects or attempt:
                self._count(self.metrics and self.metrics.reconnects.labels(self.name))
            lasted = False
            try:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(lambda: _Protocol(self), s.host, s.port),
                    s.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                reason = "timeout" if isinstance(exc, TimeoutError) else "unreachable"
                log.warning("PBX %s at %s:%s %s: %s", self.name, s.host, s.port, reason, exc)
                self.refused = None  # not refused: not reached
                self._count(
                    self.metrics and self.metrics.connect_failures.labels(self.name, reason)
                )
            else:
                self._protocol = proto
                try:
                    lasted = await self._session(proto)
                except LoginFailed as exc:
                    log.error("PBX %s: login as %r refused: %s", self.name, s.username, exc)
                    self.refused = f"login as {s.username!r} refused: {exc}"  # for /healthz
                    self._count(
                        self.metrics and self.metrics.connect_failures.labels(self.name, "auth")
                    )
                except MissingPermission as exc:
                    self.refused = str(exc)
                    if str(exc) != self._refused_by:
                        log.error("PBX %s: %s; staying off it", self.name, exc)
                        self._refused_by = str(exc)
                    self._count(
                        self.metrics
                        and self.metrics.connect_failures.labels(self.name, "permission")
                    )
                    with contextlib.suppress(AmiError, OSError, TimeoutError):
                        await self._send(proto, ami.logoff())
                except PbxOwned as exc:
                    if exc.owner != self._refused_by:
                        log.error("PBX %s: %s", self.name, exc)
                        self._refused_by = exc.owner
                    self._count(
                        self.metrics and self.metrics.connect_failures.labels(self.name, "owned")
                    )
                    with contextlib.suppress(AmiError, OSError, TimeoutError):
                        await self._send(proto, ami.logoff())
                except (TimeoutError, AmiError, OSError) as exc:
                    log.warning("PBX %s: session ended: %s", self.name, exc)
                finally:
                    self._teardown(proto)
            if self._stopping:
                break
            attempt = 0 if lasted else attempt + 1
            await asyncio.sleep(backoff_delay(attempt, s.backoff_initial, s.backoff_max, self._rng))

    async def _session(self, proto: _Protocol) -> bool:
        """Log in, resync, keep alive until the link is lost.  True if we got in."""
        s = self.settings
        await asyncio.wait(
            {proto.banner, proto.lost},
            timeout=s.connect_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if not proto.banner.done():
            raise AmiError("no AMI banner: the peer closed the connection or is not Asterisk")
        self.version = proto.banner.result()
        try:
            response = await asyncio.wait_for(
                proto.send_headers(
                    ami.login(s.username, s.secret).all_headers(self._new_action_id()), False
                ),
                s.connect_timeout,
            )
        except ActionOutcomeUnknown as exc:
            raise LoginFailed("connection closed during login") from exc
        if response.get("Response") != "Success":
            raise LoginFailed(response.get("Message") or "refused")
        if s.owner:
            await self._take_lease(proto)  # raises PbxOwned: another Dirigent drives it
        self.connects += 1
        log.info("PBX %s: logged in (AMI %s)", self.name, self.version)
        for event_name in s.exclude_events:
            await self._send(proto, ami.filter_out(event_name))
        await self._probe(proto)  # raises MissingPermission: Dirigent would be half-deaf
        self._logged_in.set()
        if self.metrics:
            self.metrics.pbx_up.labels(self.name).set(1)
        self._emit(PbxConnected(self.name, self.version or ""))
        keepalive = asyncio.ensure_future(self._keepalive(proto))
        resyncer = asyncio.ensure_future(self._resync_after_boot(proto))
        try:
            reason = await proto.lost
        finally:
            keepalive.cancel()
            resyncer.cancel()
        if self._stopping:  # our own Logoff: the PBX closes the link as asked
            self._said_logged_off()
        else:
            log.warning("PBX %s: link lost (%s)", self.name, reason)
        return True

    def _teardown(self, proto: _Protocol) -> None:
        proto.close()
        was_up = self._logged_in.is_set()
        self._logged_in.clear()
        self._protocol = None
        self._resync_buffer = None
        if self.metrics:
            self.metrics.pbx_up.labels(self.name).set(0)
            # the mirror holds what it last saw: no count is known until the resync
            with contextlib.suppress(KeyError):
                self.metrics.channels.remove(self.name)
        for action_id, fut in list(self._originates.items()):
            self.tracker.forget(action_id)
            if not fut.done():
                fut.set_exception(ActionOutcomeUnknown("Originate"))
                # its waiter hears of it when it runs next; at a shutdown the
                # loop may never run it again, and asyncio would print "Future
                # exception was never retrieved" at exit for an outcome the
                # next start's reconcile settles (marked retrieved, not lost)
                fut.exception()
        self._originates.clear()
        if was_up:
            self._emit(PbxDisconnected(self.name, "link lost"))

    async def _take_lease(self, proto: _Protocol, renewing: bool = False) -> None:
        """Hold the PBX's lease in its own AstDB (``dirigent/owner``: owner and
        expiry): whoever runs the PBX sees it (``database show dirigent``),
        and it needs no database shared between the Dirigents.  Read, then
        written when free, expired, ours or taken over on purpose; a lease
        newly taken is read back once the other writers have had their
        turn, and only the one whose write stayed drives the PBX."""
        s = self.settings
        now = time.time()
        holder, until = await self._read_lease(proto)
        if holder and holder != s.owner and until > now:
            if not s.takeover:
                self.refused = f"driven by another Dirigent ({holder})"
                raise PbxOwned(holder, until)
            log.warning("PBX %s: taking it over from %s (takeover = true)", self.name, holder)
        elif holder and holder != s.owner and renewing:
            log.warning("PBX %s: lease of %s had expired; taking it back", self.name, holder)
        await self._send(
            proto, ami.db_put(LEASE_FAMILY, LEASE_KEY, f"{s.owner}|{now + s.lease_seconds:.0f}")
        )
        if holder != s.owner:
            await asyncio.sleep(s.lease_settle)
            holder, until = await self._read_lease(proto)
            if holder != s.owner:  # written over at the same moment: the other one drives it
                self.refused = f"driven by another Dirigent ({holder})"
                raise PbxOwned(holder, until)
        self.refused = None

    async def _probe(self, proto: _Protocol) -> None:
        """Send a ``UserEvent`` to ourselves and wait for it: the shipped
        dialplan announces inbound callers (``DirigentInbound``) and AMD's
        verdicts (``DirigentAMD``) in UserEvents, and an AMI user without
        read class ``user`` (a ``read =`` line trimmed to the classes that
        look enough) logs in, resyncs and looks healthy while every caller
        goes to the fallback and every person a campaign reaches gets
        silence.  So this PBX is refused, saying which class is missing,
        and tried again with the backoff (a ``manager reload`` with the
        class added lets the next login in)."""
        token = secrets.token_hex(8)
        arrived = asyncio.get_running_loop().create_future()
        proto.probes[token] = arrived
        try:
            try:
                await self._send(proto, ami.user_event(PROBE_EVENT, {"Token": token}))
            except ActionFailed as exc:
                raise MissingPermission(
                    f"AMI user {self.settings.username!r} may not send a UserEvent ({exc}):"
                    " it needs write class 'user' (asterisk/conf/manager_dirigent.conf)"
                ) from None
            try:
                await asyncio.wait_for(asyncio.shield(arrived), self.settings.probe_timeout)
            except TimeoutError:
                raise MissingPermission(
                    f"AMI user {self.settings.username!r} does not receive UserEvents: it needs"
                    " read class 'user' (Dirigent would hear neither inbound callers nor AMD's"
                    " verdicts; asterisk/conf/manager_dirigent.conf)"
                ) from None
        finally:
            proto.probes.pop(token, None)
        self.refused, self._refused_by = None, None  # a later refusal is said again

    async def _read_lease(self, proto: _Protocol) -> tuple[str, float]:
        """The lease's holder and expiry (``""``: nobody's, or not a lease of ours)."""
        try:
            items = await self._send_list(proto, ami.db_get(LEASE_FAMILY, LEASE_KEY))
        except ActionFailed:
            return "", 0.0  # "Database entry not found": nobody holds it
        value = items[0].get("Val", "") if items else ""
        holder, _, expiry = value.rpartition("|")
        try:
            return holder, float(expiry) if holder else 0.0
        except ValueError:
            return "", 0.0  # not a lease of ours: overwritten

    async def _keepalive(self, proto: _Protocol) -> None:
        s = self.settings
        while True:
            await asyncio.sleep(s.keepalive_interval)
            try:
                await asyncio.wait_for(self._send(proto, ami.ping()), s.keepalive_timeout)
                if s.owner:
                    await self._take_lease(proto, renewing=True)
            except PbxOwned as exc:
                log.error("PBX %s: %s; leaving it", self.name, exc)
                if not proto.lost.done():
                    proto.lost.set_result("taken over by another Dirigent")
                proto.close()
                return
            except (TimeoutError, AmiError):
                log.warning("PBX %s: no answer to keepalive Ping; closing the link", self.name)
                if not proto.lost.done():
                    proto.lost.set_result("keepalive timeout")
                proto.close()
                return
            self._expire_originates()

    async def _resync_after_boot(self, proto: _Protocol) -> None:
        """The one resync of this login, once Asterisk is fully booted.

        Nail-ups and routing start on its :class:`ResyncCompleted`; during a
        boot they would meet a PBX whose channel drivers are not loaded yet."""
        try:
            await self._resync_once_booted(proto)
        except (AmiError, TimeoutError):
            # without a resync the mirror cannot be trusted: a new link gets one
            log.exception("PBX %s: resync failed; closing the link to start again", self.name)
            if not proto.lost.done():
                proto.lost.set_result("resync failed")
            proto.close()

    async def _resync_once_booted(self, proto: _Protocol) -> None:
        booted = proto.fully_booted
        try:
            await asyncio.wait_for(booted.wait(), self.settings.boot_wait)
        except TimeoutError:
            log.warning(
                "PBX %s: no FullyBooted within %.0f s of login (still booting, or the AMI"
                " user lacks 'read = system'); resyncing anyway",
                self.name,
                self.settings.boot_wait,
            )
        if booted.is_set():
            await self.resync(proto)
            return
        await self.resync(proto)
        await booted.wait()
        log.info("PBX %s: finished booting after our login; resyncing again", self.name)
        await self.resync(proto)

    async def resync(self, proto: _Protocol | None = None) -> None:
        """Rebuild the mirror from ``CoreShowChannels``; emit the differences."""
        proto = proto or self._require()
        started = self._monotonic()
        self._resync_buffer = []
        try:
            items = await self._send_list(proto, ami.core_show_channels())
        except BaseException:
            self._flush_resync_buffer()
            raise
        snapshot = [ChannelSnapshot.from_message(m) for m in items if m.event == "CoreShowChannel"]
        diff = self.mirror.resync(snapshot)
        for event in diff:
            self._emit(event)
        self._flush_resync_buffer()
        seconds = self._monotonic() - started
        if self.metrics:
            self.metrics.resync_seconds.labels(self.name).observe(seconds)
            # read at each scrape from then on: the count follows every call,
            # not only the last resync (the series goes while the PBX is down)
            self.metrics.channels.labels(self.name).set_function(self._channel_count)
        log.info(
            "PBX %s: resync found %d channels (%d changes)", self.name, len(snapshot), len(diff)
        )
        self._emit(ResyncCompleted(self.name, len(snapshot), len(self.mirror.bridges), seconds))

    def _channel_count(self) -> float:
        return float(len(self.mirror.channels))

    def _flush_resync_buffer(self) -> None:
        buffered, self._resync_buffer = self._resync_buffer or [], None
        for message in buffered:
            self._dispatch(message)

    # -- internals: messages ----------------------------------------------------------
    async def _send(
        self, proto: _Protocol, action: ami.Action, action_id: str | None = None
    ) -> AmiMessage:
        headers = action.all_headers(action_id or self._new_action_id())
        try:
            reply = await asyncio.wait_for(
                proto.send_headers(headers, False), self.settings.action_timeout
            )
        except ActionOutcomeUnknown:
            self._count_action(action.name, "unknown")
            raise
        except TimeoutError:
            self._count_action(action.name, "unknown")
            raise ActionOutcomeUnknown(action.name) from None
        message = from_panoramisk(reply)
        if message.response in ("Error", "Failure"):
            self._count_action(action.name, "error")
            raise ActionFailed(action.name, message.get("Message") or "error")
        self._count_action(action.name, "success")
        return message

    async def _send_list(self, proto: _Protocol, action: ami.Action) -> list[AmiMessage]:
        action_id = self._new_action_id()
        try:
            messages = await asyncio.wait_for(
                proto.send_list(action.all_headers(action_id), action_id),
                self.settings.action_timeout,
            )
        except TimeoutError:
            proto.lists.pop(action_id, None)
            self._count_action(action.name, "unknown")
            raise ActionOutcomeUnknown(action.name) from None
        except ActionOutcomeUnknown:
            self._count_action(action.name, "unknown")
            raise
        if messages and messages[0].response in ("Error", "Failure"):
            self._count_action(action.name, "error")
            raise ActionFailed(action.name, messages[0].get("Message") or "error")
        self._count_action(action.name, "success")
        return [m for m in messages[1:] if m.get("EventList") is None]

    def _count_action(self, name: str, result: str) -> None:
        if self.metrics:
            self.metrics.actions.labels(self.name, name, result).inc()

    @staticmethod
    def _count(child: Any) -> None:
        if child:
            child.inc()

    def _on_bad_message(self, item: BadMessage) -> None:
        log.warning("PBX %s: skipped a malformed AMI message: %s", self.name, item.reason)
        if self.metrics:
            self.metrics.bad_messages.labels(self.name).inc()

    def _on_event(self, message: AmiMessage) -> None:
        if self.metrics:
            name = message.event or "?"
            counter = self._event_counters.get(name)
            if counter is None:
                counter = self._event_counters[name] = self.metrics.events.labels(self.name, name)
            counter.inc()
        if self._resync_buffer is not None:
            self._resync_buffer.append(message)
            return
        self._dispatch(message)

    def _dispatch(self, message: AmiMessage) -> None:
        event = normalize(self.name, message)
        if event is None:
            return
        if type(event) is OriginateResponse:
            why = self.tracker.stray(event)
            if why is not None or event.action_id not in self._originates:
                self._stray(event, why or "unknown-action")
                return
        event = self.mirror.annotate(event)
        self.mirror.apply(event)
        result = self.tracker.on_event(event, self._monotonic())
        if type(event) is OriginateResponse and result is None:
            # waiting for the hang-up that carries the cause, at most the grace time
            asyncio.get_running_loop().call_later(
                CAUSE_GRACE_SECONDS + 0.05, self._expire_originates
            )
        self._emit(event)
        if result is not None:
            self._finish_originate(result)
        if isinstance(event, PbxShutdown) and self._protocol is not None:
            log.warning(
                "PBX %s: Asterisk is %s",
                self.name,
                "restarting" if event.restart else "shutting down",
            )

    def _stray(self, event: OriginateResponse, why: str) -> None:
        """An OriginateResponse that is not the answer to an Originate of ours:
        ignored.  Another application's responses reach every AMI session, so
        those are only counted; one carrying our name (a sibling server on the
        same ``[[pbx]]`` name, or our process before a restart) is a warning."""
        if why == "unknown-action" and not event.action_id.startswith(f"dirigent-{self.name}-"):
            why = "other-client"
            log.debug("PBX %s: OriginateResponse of another client ignored", self.name)
        else:
            log.warning(
                "PBX %s: ignored an OriginateResponse that is not ours (%s): ActionID %r,"
                " channel %r, Uniqueid %r",
                self.name,
                why,
                event.action_id,
                event.channel,
                event.uniqueid,
            )
        if self.metrics:
            self.metrics.stray_responses.labels(self.name, why).inc()

    def _expire_originates(self) -> None:
        for result in self.tracker.expire(self._monotonic()):
            self._finish_originate(result)

    def _finish_originate(self, result: OriginateResult) -> None:
        self._emit(result)
        fut = self._originates.pop(result.action_id, None)
        if fut is not None and not fut.done():
            fut.set_result(result)

    def _emit(self, event: PbxEvent) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("PBX %s: subscriber failed on %s", self.name, type(event).__name__)
