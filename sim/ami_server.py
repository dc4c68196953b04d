"""The simulated PBX on the wire: an AMI server over real TCP (Twisted).

Wire behaviour follows the recorded Asterisk 22 (``../shared/asterisk/
README.md``): banner ``Asterisk Call Manager/11.0.0``; actions before Login
get ``Permission denied``; a wrong secret gets ``Authentication failed``
after a delay and the socket is closed; Logoff answers ``Goodbye`` and
closes; list actions answer ``EventList: start``, items carrying the
ActionID, then ``<Name>Complete`` with ``ListItems``; a shutdown sends
``Event: Shutdown`` and closes every connection, which are then refused until
:meth:`SimAmiServer.restart`.

And what the live lab showed (issue 14): ``FullyBooted`` follows every
successful login while booted (``action_login``); a login accepted during a
boot gets it later, as the boot's broadcast (:meth:`SimAmiServer.restart`
with ``boot_delay``); ``OriginateResponse`` is an event for every logged-in
session (``ast_manager_event_multichan``), so a call originated by a client
that died still gets its response, minutes later, on whichever sessions are
connected then: the next process's included, ActionID echoed verbatim.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IListeningPort, IReactorTCP, IReactorTime, ITCPTransport
from twisted.logger import Logger

from asterisk.framing import NEED_DATA, AmiFramer, AmiMessage, BadMessage, encode_message
from sim.pbx import Headers, SimError, SimPbx, action_fields

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
#: FullyBooted follows the Login answer as a write of its own (as in Asterisk:
#: astman_send_ack, then astman_append), on the reactor's next turn: a client
#: may act on the answer before it reads the event
LOGIN_EVENT_GAP = 0.0
log = Logger(namespace="dirigent.sim")


class AmiServerProtocol(protocol.Protocol):
    factory: SimAmiServer
    #: set by the TCP port before connectionMade, for the connection's life
    transport: ITCPTransport

    def connectionMade(self) -> None:
        self.framer = AmiFramer(expect_banner=False)
        self.authenticated = False
        self.events_on = True
        self.excluded: set[str] = set()
        self.closing = False
        self.transport.write(BANNER)
        self.factory.sessions.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.factory.sessions.discard(self)

    # -- output ---------------------------------------------------------------------
    def send(self, headers: Headers) -> None:
        if not self.closing:
            self.transport.write(encode_message(headers))

    def respond(self, action_id: str | None, response: str, *extra: tuple[str, str]) -> None:
        headers: Headers = [("Response", response)]
        if action_id is not None:
            headers.append(("ActionID", action_id))
        headers.extend(extra)
        self.send(headers)

    def event(self, headers: Headers, encoded: bytes) -> None:
        if (
            self.authenticated
            and self.events_on
            and not self.closing
            and headers[0][1] not in self.excluded
            and self.factory.may_read(headers)
        ):
            self.transport.write(encoded)

    # -- input ----------------------------------------------------------------------
    def dataReceived(self, data: bytes) -> None:
        self.framer.receive_data(data)
        while (item := self.framer.next_message()) is not NEED_DATA:
            if isinstance(item, AmiMessage):
                self.handle(item)
            elif isinstance(item, BadMessage):
                self.respond(None, "Error", ("Message", "Missing action in request"))

    def handle(self, message: AmiMessage) -> None:
        name = (message.get("Action") or "").strip()
        aid = message.get("ActionID")
        lname = name.lower()
        counts = self.factory.action_counts
        counts[lname] = counts.get(lname, 0) + 1
        self.factory.action_log.append((name, aid))
        if not name:
            self.respond(aid, "Error", ("Message", "Missing action in request"))
            return
        if not self.authenticated and lname not in ("login", "challenge", "logoff"):
            self.respond(aid, "Error", ("Message", "Permission denied"))
            return
        handler = getattr(self, f"do_{lname}", None)
        if handler is None:
            self.respond(
                aid,
                "Error",
                (
                    "Message",
                    f"Invalid/unknown command: {name}."
                    " Use Action: ListCommands to show available commands.",
                ),
            )
            return
        try:
            handler(aid, action_fields(message.headers))
        except SimError as exc:
            self.respond(aid, "Error", ("Message", str(exc)))

    # -- actions --------------------------------------------------------------------
    def do_login(self, aid: str | None, f: dict[str, Any]) -> None:
        if self.authenticated:
            self.respond(aid, "Success", ("Message", "Already authenticated"))
            return
        server = self.factory
        if f.get("Username") == server.username and f.get("Secret") == server.secret:
            self.authenticated = True
            self.events_on = str(f.get("Events", "on")).lower() not in ("off", "no", "false")
            self.respond(aid, "Success", ("Message", "Authentication accepted"))
            if server.pbx.booted:
                # action_login writes it right after the answer, as a write of
                # its own: a client may well read it after acting on the answer
                server.clock.callLater(
                    LOGIN_EVENT_GAP,
                    self.event_now,
                    [
                        ("Event", "FullyBooted"),
                        ("Privilege", "system,all"),
                        ("Uptime", str(int(server.pbx.now()))),
                        ("LastReload", str(int(server.pbx.now()))),
                        ("Status", "Fully Booted"),
                    ],
                )
            return

        def refuse() -> None:
            self.respond(aid, "Error", ("Message", "Authentication failed"))
            self.transport.loseConnection()

        self.closing_soon = server.clock.callLater(server.auth_fail_delay, refuse)

    def event_now(self, headers: Headers) -> None:
        self.event(headers, encode_message(headers))

    def do_logoff(self, aid: str | None, f: dict[str, Any]) -> None:
        log.info("AMI client logged off")
        self.respond(aid, "Goodbye", ("Message", "Thanks for all the fish."))
        self.closing = True
        self.transport.loseConnection()

    def do_ping(self, aid: str | None, f: dict[str, Any]) -> None:
        self.respond(aid, "Success", ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}"))

    def do_events(self, aid: str | None, f: dict[str, Any]) -> None:
        self.events_on = str(f.get("EventMask", "on")).lower() not in ("off", "no", "false")
        self.respond(aid, "Success", ("Events", "On" if self.events_on else "Off"))

    def do_filter(self, aid: str | None, f: dict[str, Any]) -> None:
        criteria = f.get("MatchCriteria", "")
        if criteria.startswith("action(exclude),name(") and criteria.endswith(")"):
            self.excluded.add(criteria[len("action(exclude),name(") : -1])
            self.respond(aid, "Success", ("Message", "Success"))
        else:
            self.respond(aid, "Error", ("Message", "Unsupported filter"))

    def do_corestatus(self, aid: str | None, f: dict[str, Any]) -> None:
        pbx = self.factory.pbx
        self.respond(
            aid,
            "Success",
            ("CoreStartupDate", time.strftime("%Y-%m-%d")),
            ("CoreStartupTime", time.strftime("%H:%M:%S")),
            ("CoreReloadDate", time.strftime("%Y-%m-%d")),
            ("CoreReloadTime", time.strftime("%H:%M:%S")),
            ("CoreCurrentCalls", str(len(pbx.channels))),
            (
                "CoreProcessedCalls",
                str(pbx.stats.get("originate", 0) + pbx.stats.get("inbound", 0)),
            ),
        )

    def do_coresettings(self, aid: str | None, f: dict[str, Any]) -> None:
        self.respond(
            aid,
            "Success",
            ("AMIversion", "11.0.0"),
            ("AsteriskVersion", "22.10.1-dirigent-sim"),
            ("SystemName", ""),
        )

    def do_originate(self, aid: str | None, f: dict[str, Any]) -> None:
        if not f.get("Channel"):
            raise SimError("Channel not specified")
        if not f.get("Application") and not (f.get("Context") and f.get("Exten")):
            raise SimError("Context, Exten and Priority or Application required")
        if str(f.get("Async", "false")).lower() not in ("true", "yes", "1"):
            raise SimError("Only Async originates are simulated")
        self.respond(aid, "Success", ("Message", "Originate successfully queued"))
        self.factory.pbx.originate(f, aid or "", self.factory.broadcast)

    def do_redirect(self, aid: str | None, f: dict[str, Any]) -> None:
        priority = int(f.get("Priority") or 1)
        self.factory.pbx.redirect(
            f.get("Channel", ""), f.get("Context", ""), f.get("Exten", ""), priority
        )
        self.respond(aid, "Success", ("Message", "Redirect successful"))

    def do_bridge(self, aid: str | None, f: dict[str, Any]) -> None:
        self.factory.pbx.bridge(f.get("Channel1", ""), f.get("Channel2", ""))
        self.respond(aid, "Success", ("Message", "Channels have been bridged"))

    def do_hangup(self, aid: str | None, f: dict[str, Any]) -> None:
        try:
            cause = int(f.get("Cause") or 16)
        except ValueError:
            cause = 16
        channel = f.get("Channel", "")
        count = self.factory.pbx.hangup(channel, cause)
        if channel.startswith("/"):
            self.respond(
                aid, "Success", ("EventList", "start"), ("Message", "Channels hung up will follow")
            )
            self.send(
                [
                    ("Event", "ChannelsHungupListComplete"),
                    ("EventList", "Complete"),
                    ("ListItems", str(count)),
                    *([("ActionID", aid)] if aid else []),
                ]
            )
        else:
            self.respond(aid, "Success", ("Message", "Channel Hungup"))

    def do_setvar(self, aid: str | None, f: dict[str, Any]) -> None:
        self.factory.pbx.setvar(f.get("Channel"), f.get("variable") or "", f.get("Value", ""))
        self.respond(aid, "Success", ("Message", "Variable Set"))

    def do_getvar(self, aid: str | None, f: dict[str, Any]) -> None:
        name = f.get("variable") or ""
        value = self.factory.pbx.getvar(f.get("Channel"), name)
        self.respond(aid, "Success", ("Variable", name), ("Value", value))

    def do_musiconhold(self, aid: str | None, f: dict[str, Any]) -> None:
        self.factory.pbx.music_on_hold(f.get("Channel", ""), True)
        self.respond(aid, "Success", ("Message", "Started music on hold"))

    def do_stopmusiconhold(self, aid: str | None, f: dict[str, Any]) -> None:
        self.factory.pbx.music_on_hold(f.get("Channel", ""), False)
        self.respond(aid, "Success", ("Message", "Stopped music on hold"))

    def do_messagesend(self, aid: str | None, f: dict[str, Any]) -> None:
        self.factory.pbx.message_send(f.get("To", ""))
        self.respond(aid, "Success", ("Message", "Message successfully sent"))

    def do_userevent(self, aid: str | None, f: dict[str, Any]) -> None:
        name = f.get("UserEvent")
        if not name:
            raise SimError("UserEvent needs a name")
        # its other headers are the event's body, as Asterisk sends them
        # (action_fields also keeps each under its lower-case name: skipped)
        skip = ("Action", "ActionID", "UserEvent", "Variable")
        body = [(k, str(v)) for k, v in f.items() if k[:1].isupper() and k not in skip]
        self.factory.pbx.user_event([("UserEvent", name), *body])
        self.respond(aid, "Success")

    def do_dbget(self, aid: str | None, f: dict[str, Any]) -> None:
        """AstDB read, as Asterisk 22 answers it (a list of one, or an error)."""
        family, key = f.get("Family", ""), f.get("Key", "")
        value = self.factory.astdb.get((family, key))
        if value is None:
            self.respond(aid, "Error", ("Message", "Database entry not found"))
            return
        item: Headers = [
            ("Event", "DBGetResponse"),
            ("Family", family),
            ("Key", key),
            ("Val", value),
            *([("ActionID", aid)] if aid else []),
        ]
        self._list(aid, "Result will follow", [item], "DBGetComplete")

    def do_dbput(self, aid: str | None, f: dict[str, Any]) -> None:
        if not f.get("Family") or not f.get("Key"):
            raise SimError("No family specified" if not f.get("Family") else "No key specified")
        self.factory.astdb[(f["Family"], f["Key"])] = f.get("Val", "")
        self.respond(aid, "Success", ("Message", "Updated database successfully"))

    def do_dbdel(self, aid: str | None, f: dict[str, Any]) -> None:
        if self.factory.astdb.pop((f.get("Family", ""), f.get("Key", "")), None) is None:
            self.respond(aid, "Error", ("Message", "Database entry not found"))
            return
        self.respond(aid, "Success", ("Message", "Key deleted successfully"))

    def do_coreshowchannels(self, aid: str | None, f: dict[str, Any]) -> None:
        items = self.factory.pbx.core_show_channels(aid or "")
        self._list(aid, "Channels will follow", items, "CoreShowChannelsComplete")

    def _list(self, aid: str | None, message: str, items: list[Headers], complete: str) -> None:
        self.respond(aid, "Success", ("EventList", "start"), ("Message", message))
        for item in items:
            self.send(item)
        self.send(
            [
                ("Event", complete),
                *([("ActionID", aid)] if aid else []),
                ("EventList", "Complete"),
                ("ListItems", str(len(items))),
            ]
        )


class SimAmiServer(protocol.ServerFactory[AmiServerProtocol]):
    """AMI over TCP in front of a :class:`SimPbx`; several clients at once."""

    protocol = AmiServerProtocol

    def __init__(
        self,
        pbx: SimPbx,
        reactor: IReactorTCP,
        *,
        username: str = "dirigent",
        secret: str = "secret",
        auth_fail_delay: float = 1.0,
        clock: IReactorTime | None = None,
    ) -> None:
        self.pbx = pbx
        self.reactor = reactor
        self.clock: IReactorTime = clock or reactor  # type: ignore[assignment]
        #: the PBX's AstDB (family, key) -> value: it outlives client sessions
        self.astdb = pbx.astdb
        self.username = username
        self.secret = secret
        #: the AMI user's ``read`` classes (manager.conf); None: ``read = all``
        self.read_classes: frozenset[str] | None = None
        self.auth_fail_delay = auth_fail_delay
        self.sessions: set[AmiServerProtocol] = set()
        #: actions received, by lower-cased name (tests check nothing is replayed)
        self.action_counts: dict[str, int] = {}
        #: every action received as (name, ActionID), in order
        self.action_log: list[tuple[str, str | None]] = []
        self.port: IListeningPort | None = None
        self._interface = "127.0.0.1"
        self._port_number = 0
        pbx.subscribe(self.broadcast)

    def may_read(self, headers: Headers) -> bool:
        """Asterisk sends an event only to users with one of its classes
        (its ``Privilege``) in their ``read`` line."""
        if self.read_classes is None:
            return True
        privilege = next((v for k, v in headers if k == "Privilege"), None)
        if privilege is None:
            return True
        return bool(set(privilege.split(",")) - {"all"} & self.read_classes)

    def broadcast(self, headers: Headers) -> None:
        encoded = encode_message(headers)
        for session in list(self.sessions):
            session.event(headers, encoded)

    def listen(self, port: int = 0, interface: str = "127.0.0.1") -> IListeningPort:
        self._interface = interface
        # Twisted types listenTCP's factory as a bare ServerFactory, i.e.
        # ServerFactory[_ProtoWithFactory], and Factory is invariant in its
        # protocol: no factory of a concrete protocol class passes.
        self.port = self.reactor.listenTCP(port, self, interface=interface)  # type: ignore[arg-type]
        host = self.port.getHost()
        assert isinstance(host, IPv4Address | IPv6Address), host
        self._port_number = host.port
        return self.port

    @property
    def address(self) -> tuple[str, int]:
        return self._interface, self._port_number

    def drop_connections(self) -> None:
        """Cut every client's TCP link at once (a network failure)."""
        for session in list(self.sessions):
            session.transport.abortConnection()

    def shutdown(self, on_closed: Callable[[], None] | None = None, restart: bool = False) -> Any:
        """``core stop now``: hang up calls, send Shutdown, close, stop listening."""
        self.pbx.shutdown(restart=restart)
        for session in list(self.sessions):
            session.closing = True
            session.transport.loseConnection()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None

    def restart(self, boot_delay: float = 0.0) -> IListeningPort:
        """Start listening again on the same port.

        ``boot_delay`` > 0: AMI accepts logins before the boot is over (as
        recorded, ~0.5 s after start); those get no ``FullyBooted`` with their
        login, and the boot's own ``FullyBooted`` reaches every session when
        it ends, ``boot_delay`` seconds later."""
        port = self.listen(self._port_number, self._interface)
        if boot_delay <= 0:
            self.pbx.booted = True
        else:
            self.pbx.booted = False
            self.clock.callLater(boot_delay, self.pbx.fully_booted)
        return port

    def core_restart(self, down_for: float = 1.0, boot_delay: float = 0.0) -> Any:
        """``core restart now``: every call hung up (agents' legs too),
        ``Shutdown`` with ``Restart: True``, connections closed and refused;
        ``down_for`` seconds later AMI listens again (see :meth:`restart`)."""
        stopped = self.shutdown(restart=True)
        self.clock.callLater(down_for, self.restart, boot_delay)
        return stopped

    def stop(self) -> Any:
        with contextlib.suppress(Exception):
            self.drop_connections()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None
