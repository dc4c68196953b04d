"""The telephony port, in the domain's words: what the ACD and the dialer ask
of a PBX, and what a PBX tells them back.

Nothing here knows Asterisk: no dialplan contexts or priorities, no dial
strings, channel variables or AMI headers.  The PBX adapter
(:class:`asterisk.port.AsteriskVoice`, behind both the AMI session and the
in-process simulated PBX) translates each command into its actions and each
of its events into one of the :data:`CallEvent` classes below, and its
failures into the errors below -- so ``center/`` and ``dialer/`` depend on
this module only, and another PBX needs another adapter, not another ACD.

Calls are named by a *call id*: the id the PBX gave the caller's leg, or the
one the caller of :meth:`Telephony.dial_customer` / :meth:`Telephony.keep_line`
chose (so that a call can be found again after a restart).  Results are
Twisted Deferreds (live reactor and ``task.Clock`` alike); the module itself
imports no Twisted at run time.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred


# -- errors -------------------------------------------------------------------------
#: an agent's pause while its line's bridge holds a call found there after a
#: restart that its owner has not taken over yet: the voice adapter holds the
#: agent so (never ready with a customer in its conference), a campaign's
#: runner takes its own call over from an agent held so for it alone
CALL_IN_BRIDGE = "call in bridge"


class TelephonyError(Exception):
    """Base of what a PBX command fails with, whichever PBX is behind the port."""


class PbxUnavailable(TelephonyError):
    """No link to the PBX: the command was not sent."""


class CommandRefused(TelephonyError):
    """The PBX refused the command (e.g. the call no longer exists)."""


class OutcomeUnknown(TelephonyError):
    """The link dropped while the command was in flight: it may or may not have
    been carried out, and it is not re-sent (a dial: reconcile, never redial)."""


class InvalidCommand(TelephonyError, ValueError):
    """A command that must not be sent (a control character in a number, an
    empty call id ...); ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# -- values -------------------------------------------------------------------------
class Outcome(enum.StrEnum):
    """How a dial ended, as a dialer needs it."""

    ANSWERED = "answered"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    CONGESTION = "congestion"
    INVALID = "invalid"  # number not in service / unallocated
    FAILED = "failed"  # could not even start (unknown endpoint, no contact)
    UNKNOWN = "unknown"  # the link dropped before we learned it


class Prompt(enum.StrEnum):
    """Recorded messages a call can be sent to; the call ends after it."""

    ABANDON = "abandon"  # no agent within the connect time (regulators require it)
    MACHINE_MESSAGE = "machine-message"  # left on an answering machine


class Verdict(enum.StrEnum):
    """What answered a customer call (answering-machine detection)."""

    HUMAN = "human"
    MACHINE = "machine"


class RingFailure(enum.StrEnum):
    """Why ringing an agent's phone for a call did not connect it."""

    BUSY = "busy"
    UNREACHABLE = "unreachable"
    NO_ANSWER = "no-answer"


@dataclass(frozen=True, slots=True)
class DialResult:
    """The end of a dial (customer leg or agent line): answered or why not.
    ``cause`` is the PBX's hang-up cause when one is known (Q.850)."""

    call: str | None
    outcome: Outcome
    cause: int | None = None


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """What a customer leg carries so that it can be tied to its attempt row
    after a restart (and what the PBX's reports show)."""

    attempt: str
    campaign: str


@dataclass(frozen=True, slots=True)
class LiveCall:
    """A call the PBX has now.  ``bridge`` names the conversation it is in
    (None: in none); ``name`` is the PBX's own label, kept for records.
    ``in_fallback``: the PBX had given the caller to its own fallback (its
    queue or voicemail) when it last told us every call (at a resync), so
    the caller is not ours to route: a caller whose wait ran out while we
    were down or cut off."""

    id: str
    name: str
    bridge: str | None
    in_fallback: bool = False


# -- events the port delivers ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TelephonyEvent:
    pbx: str


@dataclass(frozen=True, slots=True)
class CallWaiting(TelephonyEvent):
    """An inbound caller waits (hold music) for an agent of ``queue``."""

    call: str
    queue: str | None
    caller: str | None


@dataclass(frozen=True, slots=True)
class CallFellBack(TelephonyEvent):
    """The PBX gave up waiting for us and took the caller to its own fallback
    (plain queue or voicemail): not ours any more."""

    call: str


@dataclass(frozen=True, slots=True)
class CallAbandonedByPbx(TelephonyEvent):
    """Nobody moved the person on ``call`` by the connect limit, and the PBX
    played the abandon message itself (its net, for a server that is down,
    stopped or slow): an abandoned live answer, whoever hears of it."""

    call: str


@dataclass(frozen=True, slots=True)
class AgentRingFailed(TelephonyEvent):
    """Ringing the agent for ``call`` failed; the caller is back on hold."""

    call: str
    failure: RingFailure


@dataclass(frozen=True, slots=True)
class CallClassified(TelephonyEvent):
    """Answering-machine detection decided what answered ``call``.

    ``silence``: seconds of silence AMD heard after the person's greeting
    before it said "human" (0.0 when the PBX did not say): the greeting
    ended that long before this event, and the law's connect limit counts
    from there (:func:`dialer.campaign.connect_delay`)."""

    call: str
    verdict: Verdict
    silence: float = 0.0


@dataclass(frozen=True, slots=True)
class CallBridged(TelephonyEvent):
    """``call`` entered a conversation (with an agent, or an agent's kept line
    entered its own bridge)."""

    call: str


@dataclass(frozen=True, slots=True)
class CallEnded(TelephonyEvent):
    """``call`` is gone.  ``vanished``: it ended while the link was down (the
    resync found it gone, so when exactly is unknown); ``cut_by_pbx``: the PBX
    cut it while shutting down or restarting (nobody's hand)."""

    call: str
    vanished: bool = False
    cut_by_pbx: bool = False


@dataclass(frozen=True, slots=True)
class PbxUp(TelephonyEvent):
    """The link to the PBX is up (logged in); :class:`PbxSynced` follows once
    its calls are known."""


@dataclass(frozen=True, slots=True)
class PbxGoingDown(TelephonyEvent):
    """The PBX announced its shutdown or restart; its calls go with it."""


@dataclass(frozen=True, slots=True)
class PbxLost(TelephonyEvent):
    """The link to the PBX dropped; live calls are unknown until :class:`PbxSynced`."""


@dataclass(frozen=True, slots=True)
class PbxSynced(TelephonyEvent):
    """After a (re)connect the port knows the PBX's calls again: calls that
    ended meanwhile were reported (``vanished``) before this."""


CallEvent = (
    CallWaiting
    | CallFellBack
    | CallAbandonedByPbx
    | AgentRingFailed
    | CallClassified
    | CallBridged
    | CallEnded
    | PbxUp
    | PbxGoingDown
    | PbxLost
    | PbxSynced
)
Listener = Callable[[TelephonyEvent], None]


@runtime_checkable
class Telephony(Protocol):
    """One PBX, as the ACD and the campaign runners use it."""

    name: str

    @property
    def connected(self) -> bool: ...

    def listen(self, callback: Listener) -> None:
        """Call ``callback`` with every :data:`CallEvent`, in the PBX's order."""
        ...

    # -- queries (what the PBX has now) ------------------------------------------------
    def live_call(self, call: str) -> LiveCall | None: ...

    def live_calls(self) -> Iterable[LiveCall]: ...

    def bridged_with(self, call: str) -> frozenset[str]:
        """The other calls in ``call``'s conversation (empty: in none)."""
        ...

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
        """Ring a customer (``number`` in E.164) through ``route`` (the
        operator's trunk template, opaque here; None: the adapter's own route
        to customers); the answered call waits for
        :meth:`connect_to_agent` or :meth:`play_prompt`, after
        :class:`CallClassified` when ``detect_machine``."""
        ...

    def keep_line(
        self, agent: str, phone: str, *, call: str, timeout: float = 30.0
    ) -> Deferred[DialResult]:
        """Ring ``agent``'s ``phone`` and, once answered, keep it on the line
        in the agent's own bridge (nailed up) for calls to join."""
        ...

    def connect_to_agent(
        self, call: str, agent: str, ring: str | None = None, ring_for: float | None = None
    ) -> Deferred[None]:
        """Bring ``call`` to ``agent``: into the agent's kept line, or, with
        ``ring`` (the agent's phone), by ringing that phone for this call,
        ``ring_for`` seconds if given (a failure comes back as
        :class:`AgentRingFailed`; the caller is then back on hold)."""
        ...

    def transfer_to_queue(self, call: str, queue: str) -> Deferred[None]:
        """Blind transfer: ``call`` leaves its agent and waits (hold music) in
        ``queue`` until it is connected again."""
        ...

    def to_fallback(self, call: str, queue: str) -> Deferred[None]:
        """Give a waiting caller to the PBX's own fallback for ``queue``."""
        ...

    def play_prompt(self, call: str, prompt: Prompt) -> Deferred[None]: ...

    def hold_music(self, call: str, on: bool = True) -> Deferred[None]: ...

    def hang_up(self, call: str) -> Deferred[None]: ...

    def take_pbx_abandons(self, calls: Iterable[str]) -> Deferred[dict[str, float]]:
        """Those of ``calls`` the PBX played the abandon message to itself
        (see :class:`CallAbandonedByPbx`), with when (epoch seconds): the PBX
        keeps the fact, so a server that was down learns it after its
        restart.  What is returned is forgotten by the PBX."""
        ...

    def send_message(self, to: str, body: str, sender: str | None = None) -> Deferred[None]: ...
