"""The telephony port in Asterisk's words.

Two layers, both here because only ``asterisk/`` may know what is below:

* :class:`PbxLink`: an Asterisk as AMI shows it -- Originate, Redirect,
  Bridge, Hangup, ... as Deferreds, the normalised :class:`PbxEvent` stream
  and the channel mirror.  Two implementations: :class:`asterisk.telephony.AmiTelephony`
  (a real or simulated Asterisk over AMI) and :class:`sim.inprocess.SimTelephony`
  (the simulated PBX model called directly, so that a run under
  ``twisted.internet.task.Clock`` compresses hours into seconds).  Both
  validate actions with :mod:`asterisk.actions` and fail with
  :mod:`asterisk.errors`.
* :class:`AsteriskVoice`: the domain port (:class:`core.telephony.Telephony`)
  over a link.  This is where the shipped dialplan (``conf/extensions_dirigent.conf``)
  is known: which context a command goes to, the fallback's priority, the
  dial strings, the channel variables of an attempt, and which ``UserEvent``
  means what.  Both links inherit it, so the ACD and the dialer get the same
  domain events and commands from a real Asterisk and from the simulation
  (the simulated PBX models the same dialplan).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from asterisk import actions as ami
from asterisk.events import (
    BridgeEntered,
    ChannelHungUp,
    OriginateResult,
    PbxConnected,
    PbxDisconnected,
    PbxEvent,
    PbxShutdown,
    ResyncCompleted,
    UserEventReceived,
)
from asterisk.mirror import Channel, ChannelMirror
from core.telephony import (
    AgentRingFailed,
    AttemptRef,
    CallAbandonedByPbx,
    CallBridged,
    CallClassified,
    CallEnded,
    CallFellBack,
    CallWaiting,
    DialResult,
    InvalidCommand,
    Listener,
    LiveCall,
    PbxGoingDown,
    PbxLost,
    PbxSynced,
    PbxUp,
    Prompt,
    RingFailure,
    TelephonyEvent,
    Verdict,
)

Subscriber = Callable[[PbxEvent], None]
log = Logger(namespace="asterisk.port")


@runtime_checkable
class PbxLink(Protocol):
    name: str
    mirror: ChannelMirror

    @property
    def connected(self) -> bool: ...

    def subscribe(self, callback: Subscriber) -> None: ...

    def originate(
        self,
        channel: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int = 1,
        application: str | None = None,
        data: str | None = None,
        timeout_ms: int = 30_000,
        caller_id: str | None = None,
        variables: Mapping[str, str] | None = None,
        channel_id: str | None = None,
    ) -> Deferred[OriginateResult]: ...

    def redirect(
        self, channel: str, context: str, exten: str, priority: int = 1
    ) -> Deferred[None]: ...

    def bridge(self, channel1: str, channel2: str) -> Deferred[None]: ...

    def hangup(self, channel: str, cause: int = 16) -> Deferred[None]: ...

    def setvar(self, channel: str, variable: str, value: str) -> Deferred[None]: ...

    def play_moh(self, channel: str, on: bool = True) -> Deferred[None]: ...

    def message_send(self, to: str, body: str, sender: str | None = None) -> Deferred[None]: ...

    def db_get(self, family: str, key: str) -> Deferred[str | None]:
        """The AstDB entry, or None when there is none."""
        ...

    def db_del(self, family: str, key: str) -> Deferred[None]: ...


# -- the shipped dialplan (asterisk/conf/extensions_dirigent.conf) ----------------------
INBOUND = "dirigent-inbound"  # exten = queue: announce, hold music, then the fallback
#: the priority of ``dirigent-inbound`` after its ``DirigentFallback`` UserEvent:
#: a caller sent there goes to the fallback queue / voicemail without announcing it
FALLBACK_PRIORITY = 7
#: the priority of ``dirigent-inbound``'s label ``wait`` (its MusicOnHold): where a
#: caller whose agent's phone did not take the call waits again, not announced anew
WAIT_PRIORITY = 5
OUTBOUND = "dirigent-outbound"  # exten s: AMD (if asked), then wait to be moved
AGENT_LINE = "dirigent-agent"  # exten = agent: the agent's own ConfBridge
JOIN = "dirigent-join"  # exten = agent: join that agent's ConfBridge
CONNECT = "dirigent-connect"  # exten = phone: Dial it, UserEvent DirigentConnectFailed
#: the caller's channel variable ``[dirigent-connect]`` rings the phone for (seconds)
RING_VARIABLE = "DIRIGENT_RING"
PROMPTS = {Prompt.ABANDON: "dirigent-abandon", Prompt.MACHINE_MESSAGE: "dirigent-message"}
#: an agent's phone as a dial string
PHONE = "PJSIP/{phone}"
#: the route to a customer when a campaign names no ``trunk``: the shipped
#: PJSIP endpoint ``customers``, the number (E.164 without '+') as its user
CUSTOMER_TRUNK = "PJSIP/{number}@customers"
#: one part of a dial string (technology, endpoint, number prefix): what a
#: PJSIP endpoint name may be, so control characters or blanks in a
#: campaign's ``trunk`` stop start-up instead of failing every dial
DIAL_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
#: after the technology: PJSIP's ``endpoint/sip:user@host:port`` form too
DIAL_URI_PART = re.compile(r"(sips?:)?[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}(:[0-9]{1,5})?")
#: what the extension patterns of the contexts above (``_[a-zA-Z0-9].``: a
#: letter or digit, then one character or more) match: agent ids, queue
#: names and phones are their extensions
EXTENSION = re.compile(r"[A-Za-z0-9].+")
#: extensions Asterisk runs by itself (``failed``: a failed Originate's
#: placeholder channel; ``talk``, ``fax``): an agent or queue of that name
#: would share their calls
RESERVED_EXTENSIONS = frozenset({"failed", "talk", "fax"})
#: a PJSIP endpoint name that ``dirigent-connect`` can dial as its extension,
#: with no control characters, blanks or dialplan punctuation that would only
#: fail when the first call is sent (:data:`ENDPOINT_RULE` in words)
ENDPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{1,63}")
ENDPOINT_RULE = "a letter or digit, then 1 to 63 of letters, digits and _ . + -"
#: DialStatus of ``DirigentConnectFailed`` -> why
RING_FAILURES = {"BUSY": RingFailure.BUSY, "CHANUNAVAIL": RingFailure.UNREACHABLE}
#: the applications of ``dirigent-inbound`` after the wait: the caller is the PBX's fallback's
FALLBACK_APPLICATIONS = frozenset({"Queue", "VoiceMail"})
#: the AstDB family and key prefix of the dialplan's net: ``dirigent/abandoned/<uniqueid>``
#: = when (epoch seconds) the PBX played the abandon message itself
ABANDONED_FAMILY, ABANDONED_KEY = "dirigent", "abandoned/{call}"


def customer_route_refusal(route: str) -> str | None:
    """Why a campaign's route to its customers (its ``trunk``, a template
    with ``{number}``) is not one this adapter can dial, or None.

    The route is an Asterisk dial string, ``TECH/{number}@endpoint`` or
    ``TECH/endpoint/{number}``: every part between ``/`` and ``@`` a name
    like a PJSIP endpoint's (``{number}`` may sit inside one, e.g.
    ``0{number}``).  The configuration asks at start-up, so a bad one stops
    the server rather than failing every dial; the dialer passes the route
    through unread."""
    if route.count("{number}") != 1:
        return "must contain {number} exactly once"
    filled = route.replace("{number}", "0")
    parts = re.split(r"[/@]", filled)
    if len(parts) < 2 or "/" not in filled.split("@", 1)[0]:
        return f"{route!r}: must be TECH/... (e.g. PJSIP/{{number}}@customers)"
    for i, part in enumerate(parts):
        if not (DIAL_PART if i == 0 else DIAL_URI_PART).fullmatch(part):
            return (
                f"{route!r}: {part!r} is not a valid part of a dial string (a letter or digit,"
                " then up to 63 of letters, digits and _ . + -)"
            )
    return None


#: ``AMDCAUSE`` of a "human" verdict (apps/app_amd.c):
#: ``HUMAN-<silenceDuration>-<afterGreetingSilence>``, milliseconds
_HUMAN_CAUSE = re.compile(r"HUMAN-([0-9]{1,7})-[0-9]{1,7}")


def _live(chan: Channel) -> LiveCall:
    in_fallback = chan.context == INBOUND and chan.application in FALLBACK_APPLICATIONS
    return LiveCall(chan.uniqueid, chan.name, chan.bridge_id, in_fallback)


def greeting_silence(cause: str | None) -> float:
    """Seconds of silence AMD heard after the greeting, from its ``AMDCAUSE``
    (the shipped dialplan's ``DirigentAMD`` UserEvent sends it as ``Cause``).

    Asterisk's apps/app_amd.c sets, in milliseconds:

    * ``HUMAN-<silenceDuration>-<afterGreetingSilence>``: a greeting, then
      ``silenceDuration`` (>= ``afterGreetingSilence``, amd.conf's
      ``after_greeting_silence``, 800 by default) of silence: the greeting
      ended that long before the verdict;
    * ``INITIALSILENCE-<silenceDuration>-<initialSilence>``,
      ``LONGGREETING-<voiceDuration>-<greeting>``,
      ``MAXWORDS-<wordCount>-<maximumNumberOfWords>``,
      ``MAXWORDLENGTH-<consecutiveVoiceDuration>`` (MACHINE);
    * ``TOOLONG-<totalTime>``, ``NOAUDIODATA-<totalTime>`` (NOTSURE), and an
      empty cause for HANGUP or a channel that hung up during AMD.

    Only ``HUMAN`` names a silence after a completed greeting; anything else
    (the other causes, none, a malformed one) gives 0.0: the runner then
    counts the connect limit from the verdict, which is not later than the
    greeting's end would be."""
    if not cause:
        return 0.0
    m = _HUMAN_CAUSE.fullmatch(cause.strip())
    return int(m.group(1)) / 1000.0 if m else 0.0


def call_event(event: PbxEvent) -> TelephonyEvent | None:
    """The domain event an AMI event means, or None (most mean nothing to the
    domain: they only keep the mirror and the originate tracker up to date).
    One dict look-up per event: this runs for every event of a PBX."""
    translate = _TRANSLATE.get(type(event))
    return None if translate is None else translate(event)


def _user_event(event: UserEventReceived) -> TelephonyEvent | None:
    fields = event.fields
    match event.name:
        case "DirigentInbound":
            call = fields.get("CallUniqueid") or event.uniqueid
            if not call:
                return None
            return CallWaiting(
                event.pbx, call, fields.get("Queue") or None, fields.get("CallerIDNum")
            )
        case "DirigentAbandoned" if event.uniqueid:
            return CallAbandonedByPbx(event.pbx, event.uniqueid)
        case "DirigentFallback":
            call = fields.get("CallUniqueid") or event.uniqueid
            return CallFellBack(event.pbx, call) if call else None
        case "DirigentConnectFailed" if event.uniqueid:
            failure = RING_FAILURES.get(fields.get("DialStatus", ""), RingFailure.NO_ANSWER)
            return AgentRingFailed(event.pbx, event.uniqueid, failure)
        case "DirigentAMD" if event.uniqueid:
            machine = fields.get("Status", "") == "MACHINE"
            return CallClassified(
                event.pbx,
                event.uniqueid,
                Verdict.MACHINE if machine else Verdict.HUMAN,
                0.0 if machine else greeting_silence(fields.get("Cause")),
            )
    return None


_TRANSLATE: dict[type[PbxEvent], Callable[[Any], TelephonyEvent | None]] = {
    BridgeEntered: lambda e: CallBridged(e.pbx, e.uniqueid),
    ChannelHungUp: lambda e: CallEnded(e.pbx, e.uniqueid, e.resynced, e.cut_by_shutdown),
    UserEventReceived: lambda e: _user_event(e),
    PbxConnected: lambda e: PbxUp(e.pbx),
    PbxShutdown: lambda e: PbxGoingDown(e.pbx),
    PbxDisconnected: lambda e: PbxLost(e.pbx),
    ResyncCompleted: lambda e: PbxSynced(e.pbx),
}


def _invalid(failure: Failure) -> Failure:
    """An action the builders refused is the port's :class:`InvalidCommand`."""
    exc = failure.value
    if isinstance(exc, ami.ActionError) and not isinstance(exc, InvalidCommand):
        err = InvalidCommand(exc.field, exc.reason)
        err.__cause__ = exc
        return Failure(err)
    return failure


def _ring_time_failed(failure: Failure, call: str) -> None:
    # the Redirect right behind it says whether the caller is still there; a
    # phone that rings the dialplan's default time instead is worth a warning
    log.warn(
        "call {call}: setting its ring time failed ({e}); the dialplan's default applies",
        call=call,
        e=failure.getErrorMessage(),
    )


def _first_error(failure: Failure) -> Failure:
    """What failed inside a :func:`gatherResults` (not its FirstError wrapper)."""
    if isinstance(failure.value, FirstError):
        return failure.value.subFailure
    return failure


def _result(result: OriginateResult) -> DialResult:
    return DialResult(result.uniqueid, result.outcome, result.cause)


class AsteriskVoice:
    """:class:`core.telephony.Telephony` over the :class:`PbxLink` methods of
    ``self`` (mixed into both links)."""

    name: str
    mirror: ChannelMirror
    _listeners: list[Listener] | None = None

    # the link's methods (implemented by the class this is mixed into)
    def subscribe(self, callback: Subscriber) -> None:
        raise NotImplementedError

    def originate(self, channel: str, **kw: Any) -> Deferred[OriginateResult]:
        raise NotImplementedError

    def redirect(self, channel: str, context: str, exten: str, priority: int = 1) -> Deferred[None]:
        raise NotImplementedError

    def hangup(self, channel: str, cause: int = 16) -> Deferred[None]:
        raise NotImplementedError

    def setvar(self, channel: str, variable: str, value: str) -> Deferred[None]:
        raise NotImplementedError

    def play_moh(self, channel: str, on: bool = True) -> Deferred[None]:
        raise NotImplementedError

    def message_send(self, to: str, body: str, sender: str | None = None) -> Deferred[None]:
        raise NotImplementedError

    def db_get(self, family: str, key: str) -> Deferred[str | None]:
        raise NotImplementedError

    def db_del(self, family: str, key: str) -> Deferred[None]:
        raise NotImplementedError

    # -- events -----------------------------------------------------------------------
    def listen(self, callback: Listener) -> None:
        if self._listeners is None:
            # subscribed on first use: the domain listeners keep their place
            # among the link's subscribers (ACD and runners before the service's)
            self._listeners = []
            self.subscribe(self._translate)
        self._listeners.append(callback)

    def _translate(self, event: PbxEvent) -> None:
        # call_event's look-up, inline: this runs for every event of the PBX,
        # and most of them mean nothing to the domain
        translate = _TRANSLATE.get(type(event))
        if translate is None:
            return
        out = translate(event)
        if out is not None and self._listeners:
            for callback in self._listeners:
                callback(out)

    # -- queries ----------------------------------------------------------------------
    def live_call(self, call: str) -> LiveCall | None:
        chan = self.mirror.get(call)
        return None if chan is None else _live(chan)

    def live_calls(self) -> Iterable[LiveCall]:
        return [_live(c) for c in self.mirror.channels.values()]

    def bridged_with(self, call: str) -> frozenset[str]:
        chan = self.mirror.get(call)
        if chan is None or chan.bridge_id is None:
            return frozenset()
        return frozenset(self.mirror.bridges.get(chan.bridge_id, ())) - {call}

    def _channel(self, call: str) -> str:
        """The channel name of a call id (Asterisk also takes the uniqueid)."""
        chan = self.mirror.get(call)
        return chan.name if chan is not None else call

    # -- commands ---------------------------------------------------------------------
    def dial_customer(
        self,
        number: str,
        *,
        route: str | None,
        call: str,
        ref: AttemptRef,
        timeout: float,
        caller_id: str | None = None,
        detect_machine: bool = False,
    ) -> Deferred[DialResult]:
        d = self.originate(
            (route or CUSTOMER_TRUNK).format(number=number.lstrip("+")),
            context=OUTBOUND,
            exten="s",
            timeout_ms=int(timeout * 1000),
            caller_id=caller_id,
            variables={
                "DIRIGENT_ATTEMPT": ref.attempt,
                "DIRIGENT_CAMPAIGN": ref.campaign,
                "DIRIGENT_AMD": "1" if detect_machine else "0",
            },
            channel_id=call,
        )
        return d.addCallbacks(_result, _invalid)

    def keep_line(
        self, agent: str, phone: str, *, call: str, timeout: float = 30.0
    ) -> Deferred[DialResult]:
        d = self.originate(
            PHONE.format(phone=phone),
            context=AGENT_LINE,
            exten=agent,
            channel_id=call,
            timeout_ms=int(timeout * 1000),
        )
        return d.addCallbacks(_result, _invalid)

    def connect_to_agent(
        self, call: str, agent: str, ring: str | None = None, ring_for: float | None = None
    ) -> Deferred[None]:
        """With ``ring_for`` the caller gets :data:`RING_VARIABLE` first (a
        Setvar on the same link just before the Redirect: Asterisk carries out
        one session's actions in order, so the Dial reads it), and the phone
        rings that long, not the dialplan's default."""
        if ring is not None:
            channel = self._channel(call)
            if ring_for is not None:
                self.setvar(channel, RING_VARIABLE, f"{ring_for:.1f}").addErrback(
                    _ring_time_failed, call
                )
            d = self.redirect(channel, CONNECT, ring)
        else:
            d = self.redirect(self._channel(call), JOIN, agent)
        return d.addErrback(_invalid)

    def transfer_to_queue(self, call: str, queue: str) -> Deferred[None]:
        return self.redirect(self._channel(call), INBOUND, queue).addErrback(_invalid)

    def to_fallback(self, call: str, queue: str) -> Deferred[None]:
        d = self.redirect(self._channel(call), INBOUND, queue, FALLBACK_PRIORITY)
        return d.addErrback(_invalid)

    def play_prompt(self, call: str, prompt: Prompt) -> Deferred[None]:
        return self.redirect(self._channel(call), PROMPTS[prompt], "s").addErrback(_invalid)

    def hold_music(self, call: str, on: bool = True) -> Deferred[None]:
        return self.play_moh(self._channel(call), on).addErrback(_invalid)

    def hang_up(self, call: str) -> Deferred[None]:
        return self.hangup(self._channel(call)).addErrback(_invalid)

    def send_message(self, to: str, body: str, sender: str | None = None) -> Deferred[None]:
        return self.message_send(to, body, sender).addErrback(_invalid)

    def take_pbx_abandons(self, calls: Iterable[str]) -> Deferred[dict[str, float]]:
        """The dialplan's marks (``dirigent/abandoned/<uniqueid>`` in the
        AstDB, written by its net in ``dirigent-outbound``), one DBGet per
        call: a restart has a few dozen open attempts at most.  A mark found
        is deleted once read; one whose value is not a time counts as now
        (the message was played: that is what the mark says)."""
        found: dict[str, float] = {}

        def read(value: str | None, call: str) -> Deferred[None] | None:
            if value is None:
                return None
            try:
                found[call] = float(value)
            except ValueError:
                found[call] = time.time()
            return self.db_del(ABANDONED_FAMILY, ABANDONED_KEY.format(call=call))

        reads = [
            self.db_get(ABANDONED_FAMILY, ABANDONED_KEY.format(call=call)).addCallback(read, call)
            for call in calls
        ]
        done = gatherResults(reads, consumeErrors=True)
        return done.addCallback(lambda _: found).addErrback(_first_error)
