"""A simulated Asterisk: the PBX the fixtures were recorded on, as a model.

Pure and clock-driven: time comes from an ``IReactorTime`` (the live reactor
or ``twisted.internet.task.Clock``), chance from a seeded ``random.Random``.
The model emits AMI events as header lists, with the event names, field names
and field order that the recorded Asterisk 22 uses (``tests/fixtures/
asterisk``); :mod:`sim.ami_server` puts them on TCP, and in-process users
can subscribe directly.

What it models (``../shared/asterisk/conf``):

* agent phones ``PJSIP/1001``…: auto-answer after a short delay, one call at
  a time (a second call gets cause 17, busy), can be unregistered;
* the trunk ``PJSIP/<number>@customers`` (also ``PJSIP/customers/sip:<n>@h``):
  called numbers answer (a person or a machine), are busy, ring out or fail,
  drawn from a :class:`~sim.workload.Workload`; an Originate may force the
  outcome with ``Variable: SIM_OUTCOME=<live|machine|no_answer|busy|invalid|
  congestion>`` (tests) and ``SIM_RING``/``SIM_TALK`` seconds;
* ``Local/<exten>@sim`` far ends (answer, busy, congestion, noanswer, agent,
  customer) as in the lab dialplan;
* the Dirigent dialplan contexts of ``asterisk/conf/extensions_dirigent.conf``
  (inbound wait with MOH and fallback, outbound with AMD, nailed-up agent
  bridges, connect-by-dial, abandon message);
* inbound customer calls arriving as a Poisson process.

The SIP trunk reports busy (486), congestion (503) and not-found (404) as
``OriginateResponse`` Reason 0 with the outcome only in the hang-up cause,
exactly as the recorded Asterisk does.

What the real Asterisk 22 showed beyond the recordings (issue 14), modelled:

* which extensions exist comes from the shipped ``extensions_dirigent.conf``
  (read at start, matched like ``pbx.c``'s ``_extension_match_core``) plus the
  lab contexts this model plays; a Redirect or Originate to a context or
  extension that does not exist runs nothing: the channel is hung up ("sent
  to invalid extension but no invalid handler"), after ``Redirect successful``;
* ``SoftHangupRequest``'s ``Cause`` is an ``AST_SOFTHANGUP_*`` flag (16 when
  the dialplan ends, 4 on a shutdown or restart), never the Q.850 cause;
* a shutdown or ``core restart now`` hangs up every call, nailed-up agent
  legs included, in the recorded order (shutdown.ami); calls still ringing
  get their ``OriginateResponse`` (Reason 1) first;
* the ``DirigentInbound`` UserEvent carries ``CallerIDNum`` twice (channel
  block and body), as the shipped dialplan makes Asterisk send it;
* a Redirect sent while the channel's last Redirect has not run yet is
  refused ``Redirect failed, channel not up.`` (QA3 finding 3; manager.c);
* ``dirigent-connect`` rings the phone ``${DIRIGENT_RING}`` seconds (an agent
  phone whose ``answer_delay`` is longer, or None, rings out: NOANSWER), and
  a failed ring goes back to ``dirigent-inbound``'s ``wait`` and on to the
  fallback (QA3 findings 1, 2); a Redirect or hang-up of the caller ends
  its Dial (the phone stops ringing).
"""

from __future__ import annotations

import itertools
import random
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime

from asterisk.events import CHANNEL_FIELDS, SoftHangup
from asterisk.port import FALLBACK_PRIORITY, RING_VARIABLE, WAIT_PRIORITY
from sim.fates import CallFate, call_rng, draw_fate
from sim.workload import Workload, standard_workload

Headers = list[tuple[str, str]]
Listener = Callable[[Headers], None]

STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up", 7: "Busy"}
CAUSE_TEXT = {
    0: "Unknown",
    1: "Unallocated (unassigned) number",
    4: "Unknown",
    16: "Normal Clearing",
    17: "User busy",
    19: "User alerting, no answer",
    20: "Subscriber absent",
    34: "Circuit/channel congestion",
}
#: Asterisk's amd.conf default ``after_greeting_silence``, milliseconds
AFTER_GREETING_SILENCE_MS = 800
SIP_OF_CAUSE = {17: "486", 34: "503", 1: "404", 19: "480", 20: "480"}

_TRUNK_RE = re.compile(r"^PJSIP/(?:customers/sip:(?P<a>[^@]+)@.*|(?P<b>[^@/]+)@customers)$")
_AGENT_RE = re.compile(r"^PJSIP/(?P<ext>\d{3,6})$")
_LOCAL_RE = re.compile(r"^Local/(?P<exten>[^@]+)@(?P<context>[^/]+)$")


class SimError(Exception):
    """An action the simulated PBX refuses; the message is Asterisk's."""


# -- the dialplan: which context/extension exists ---------------------------------
def extension_matches(pattern: str, exten: str) -> bool:
    """Does ``exten`` match the extension ``pattern`` as Asterisk 22 matches it
    (``_extension_match_core`` in main/pbx.c, E_MATCH)?

    Not a pattern (no leading ``_``): equal, ``-`` ignored on both sides.  A
    pattern: ``X`` 0-9, ``Z`` 1-9, ``N`` 2-9 (either case), ``[a-z0-9]`` a set
    with ranges, ``.`` one or more of anything, ``!`` zero or more, ``-``
    ignored, anything else itself.  So ``_X.`` needs a digit first and two
    characters or more: ``alice`` and ``7`` never match it."""
    if not pattern.startswith("_"):
        return pattern.replace("-", "") == exten.replace("-", "")
    pat, data = pattern[1:].split("/", 1)[0], exten
    i = j = 0
    while True:
        while j < len(data) and data[j] == "-":
            j += 1
        while i < len(pat) and pat[i] == "-":
            i += 1
        if j >= len(data) or i >= len(pat):
            break
        c, d = pat[i], data[j]
        if c == "[":
            end = pat.find("]", i + 1)
            if end < 0:
                return False  # "Wrong usage of [] in the extension"
            k, found = i + 1, False
            while k < end:
                if k + 2 < end and pat[k + 1] == "-":
                    if pat[k] <= d <= pat[k + 2]:
                        found = True
                        break
                    k += 3
                    continue
                if d == pat[k]:
                    found = True
                    break
                k += 1
            if end == i + 1:  # an empty set is ignored
                i += 2
                continue
            if not found:
                return False
            i = end
        elif c in "nN":
            if not "2" <= d <= "9":
                return False
        elif c in "xX":
            if not "0" <= d <= "9":
                return False
        elif c in "zZ":
            if not "1" <= d <= "9":
                return False
        elif c == "." or c == "!":
            return True
        elif c != d:
            return False
        i += 1
        j += 1
    if j < len(data):
        return False  # data longer than the pattern
    return i >= len(pat) or pat[i] == "!"


_CONTEXT_RE = re.compile(r"^\[([^\]]+)\]")
_EXTEN_RE = re.compile(r"^exten\s*=>?\s*([^,]+),")

#: the lab's own contexts (../shared/asterisk/conf/extensions.conf) that this
#: model plays besides the shipped ones
LAB_DIALPLAN: dict[str, tuple[str, ...]] = {
    "sim": (
        *("answer", "busy", "congestion", "noanswer", "agent", "customer"),
        *("human", "machine", "silence"),
    ),
    "from-customers": ("4930555000", "4930555001", "5001", "5002", "_X."),
    "inbound": ("s", "direct-1001", "queue"),
    "agents": ("_10XX",),
}


def shipped_dialplan_path() -> Path:
    """The dialplan an operator installs: ``asterisk/conf/extensions_dirigent.conf``."""
    return Path(str(resources.files("asterisk") / "conf" / "extensions_dirigent.conf"))


def parse_dialplan(text: str) -> dict[str, tuple[str, ...]]:
    """``[context]`` headers and their ``exten =>`` names (``same =>`` lines add
    priorities, not extensions); ``[general]`` and ``[globals]`` are settings."""
    contexts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if m := _CONTEXT_RE.match(line):
            name = m.group(1).strip()
            current = None if name in ("general", "globals") else contexts.setdefault(name, [])
        elif current is not None and (m := _EXTEN_RE.match(line)):
            exten = m.group(1).strip()
            if exten not in current:
                current.append(exten)
    return {name: tuple(extens) for name, extens in contexts.items()}


class Dialplan:
    """Which ``context,exten`` exist: what decides whether a Redirect or an
    Originate's target runs or hangs the channel up."""

    def __init__(self, contexts: dict[str, tuple[str, ...]]) -> None:
        self.contexts = contexts
        self._known: dict[tuple[str, str], bool] = {}

    @classmethod
    def shipped(cls, path: Path | None = None) -> Dialplan:
        """The lab contexts plus the shipped dialplan file, read now."""
        path = path or shipped_dialplan_path()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise SimError(f"cannot read the shipped dialplan {path}: {exc}") from exc
        return cls({**LAB_DIALPLAN, **parse_dialplan(text)})

    def exists(self, context: str, exten: str) -> bool:
        key = (context, exten)
        known = self._known.get(key)
        if known is None:
            patterns = self.contexts.get(context)
            known = patterns is not None and any(extension_matches(p, exten) for p in patterns)
            self._known[key] = known
        return known


@dataclass
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    state: int = 0
    caller_num: str = "<unknown>"
    caller_name: str = "<unknown>"
    connected_num: str = "<unknown>"
    connected_name: str = "<unknown>"
    context: str = ""
    exten: str = ""
    priority: int = 1
    app: str = ""
    app_data: str = ""
    bridge: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    created: float = 0.0
    #: who is on the far end: "agent", "live", "machine", "local", "customer"
    far: str = ""
    agent: str | None = None  # endpoint number for agent channels
    timers: list[IDelayedCall] = field(default_factory=list)
    #: the end of this pass's ``MusicOnHold(default,${DIRIGENT_WAIT})`` in
    #: dirigent-inbound (then the fallback); a Redirect ends that MusicOnHold
    fallback: IDelayedCall | None = None
    #: a Redirect's async goto is pending (the channel is on its way out of
    #: its bridge or application): Asterisk refuses another Redirect until it
    #: has run ("Redirect failed, channel not up.": manager.c action_redirect
    #: checks ast_check_hangup, and the pending goto is the soft hang-up
    #: AST_SOFTHANGUP_ASYNCGOTO that the PBX loop clears when it jumps)
    in_transit: bool = False
    #: Redirects accepted for this channel: a dialplan Wait that a Redirect
    #: ended does not run on (the outbound net, see :meth:`SimPbx._net`)
    gotos: int = 0
    #: the phone channel this caller's Dial in dirigent-connect rings (until
    #: answered or given up): a Redirect of the caller ends that Dial
    dialing: str | None = None
    #: an inbound caller's patience while it waits alone (one per wait, not
    #: one per pass: a caller moved from queue to queue gives up no sooner)
    patience: IDelayedCall | None = None
    on_moh: bool = False
    alive: bool = True
    #: what the far end of an outbound call will do (see sim.fates)
    fate: CallFate | None = None
    #: runs dialplan (a PBX thread): it sends SoftHangupRequest APPUNLOAD at its end
    in_pbx: bool = False
    #: the Originate still waiting for this channel's answer (its response is due)
    originating: _Dial | None = None


@dataclass
class SimBridge:
    uniqueid: str
    kind: str  # "basic" (two-party) or "holding" (an agent's nailed-up bridge)
    members: list[str] = field(default_factory=list)
    owner: str | None = None  # agent endpoint for holding bridges


@dataclass
class AgentPhone:
    ext: str
    registered: bool = True
    channel: str | None = None  # uniqueid of its current call
    #: seconds it rings before it answers; None: it never answers (rings out)
    answer_delay: float | None = 0.3


_BLOCK_KEYS: dict[str, tuple[str, ...]] = {}


#: ``dirigent-outbound``'s priorities (asterisk/conf/extensions_dirigent.conf):
#: ``(person),Wait(${NET})``, the net's first step after it; ``(machine),Wait(60)``
NET_PRIORITY, MACHINE_WAIT_PRIORITY = 8, 12


class SimPbx:
    """The PBX model.  ``listeners`` get every event as a header list."""

    def __init__(
        self,
        clock: IReactorTime,
        *,
        seed: int = 0,
        agents: int = 10,
        first_agent: int = 1001,
        workload: Workload | None = None,
        agent_answer_delay: float = 0.3,
        inbound_patience_mean: float = 90.0,
        fallback_after: float = 60.0,
        amd: bool = True,
        inbound_talk: float | None = None,
        dialplan: Dialplan | None = None,
    ) -> None:
        self.clock = clock
        #: the contexts and extensions that exist (the shipped file, read now)
        self.dialplan = dialplan or Dialplan.shipped()
        self.seed = seed
        self.rng = random.Random(seed)
        self._dials: dict[str, int] = {}
        self._bridge_ids = random.Random(f"{seed}:bridges")
        self.workload = workload or standard_workload()
        self.started_at = clock.seconds()
        self.listeners: list[Listener] = []
        self._only: dict[Listener, frozenset[str] | None] = {}
        self._wanted: frozenset[str] | None = None  # None: someone wants every event
        self.channels: dict[str, SimChannel] = {}
        self.by_name: dict[str, SimChannel] = {}
        self.bridges: dict[str, SimBridge] = {}
        self.phones = {
            str(n): AgentPhone(str(n), answer_delay=agent_answer_delay)
            for n in range(first_agent, first_agent + agents)
        }
        self.inbound_patience_mean = inbound_patience_mean
        self.fallback_after = fallback_after
        self.amd = amd
        #: amd.conf ``after_greeting_silence`` (ms): a person's "human" comes
        #: this long after the end of their greeting, and ``AMDCAUSE`` says so
        #: (``HUMAN-800-800``).  The workload's AMD delay after the answer
        #: (1.5 s) is the greeting and this silence: "hello?" for 0.7 s, then
        #: 0.8 s -- what Asterisk's AMD says of sim/phones.py's
        #: ``HUMAN_GREETING`` on a real PBX (tests/fixtures/asterisk/amd.ami)
        self.amd_silence_ms = AFTER_GREETING_SILENCE_MS
        #: mean talk time of inbound callers (exponential); None: the workload's talk
        self.inbound_talk = inbound_talk
        self.globals = {"SOUNDS": "/var/lib/asterisk/sounds/lab"}
        #: the PBX's AstDB (family, key) -> value: it outlives AMI sessions
        #: (Dirigent's lease) and Dirigent itself (the dialplan net's marks)
        self.astdb: dict[tuple[str, str], str] = {}
        self._chan_seq = itertools.count(0)
        self._uid_seq = itertools.count(1)
        self._inbound: IDelayedCall | None = None
        self.booted = True
        self.stats: dict[str, int] = {}
        self._phase_cache: dict[int, Workload] = {}
        #: uniqueid -> fate of every trunk call, when set (benchmark ground truth)
        self.fate_log: dict[str, CallFate] | None = None

    # -- plumbing -----------------------------------------------------------------
    def subscribe(self, listener: Listener, events: frozenset[str] | None = None) -> None:
        """``listener`` gets every event, or only those named in ``events``.

        When every listener names its events, the others are never built:
        the in-process path reads about 70 % of what a real Asterisk sends,
        and formatting the rest was a fifth of a long simulation's time."""
        self.listeners.append(listener)
        self._only[listener] = events
        self._refilter()

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self.listeners:
            self.listeners.remove(listener)
            self._only.pop(listener, None)
            self._refilter()

    def _refilter(self) -> None:
        wanted: set[str] = set()
        for events in self._only.values():
            if events is None:
                self._wanted = None
                return
            wanted |= events
        self._wanted = frozenset(wanted)

    def _wants(self, name: str) -> bool:
        return self._wanted is None or name in self._wanted

    def _emit(self, headers: Headers) -> None:
        name = headers[0][1]
        for listener in list(self.listeners):
            only = self._only.get(listener)
            if only is None or name in only:
                listener(headers)

    def _later(
        self, chan: SimChannel | None, delay: float, fn: Callable[..., Any], *args: Any
    ) -> IDelayedCall:
        def run() -> None:
            if chan is None or chan.alive:
                fn(*args)

        call = self.clock.callLater(max(0.0, delay), run)
        if chan is not None:
            chan.timers = [t for t in chan.timers if t.active()]
            chan.timers.append(call)
        return call

    def _end_inbound_wait(self, chan: SimChannel) -> None:
        """The MusicOnHold of a pass through dirigent-inbound is over (a
        Redirect, or a new pass): its timeout will not run the fallback.
        On Asterisk a transfer (Redirect back into dirigent-inbound) runs
        the extension again with a fresh ``${DIRIGENT_WAIT}``; the first
        arrival's timer falling back would cut a transferred caller short."""
        if chan.fallback is not None and chan.fallback.active():
            chan.fallback.cancel()
        chan.fallback = None

    def _uid(self) -> str:
        return f"{int(self.clock.seconds())}.{next(self._uid_seq)}"

    def fate_of(self, number: str, forced: str | None = None) -> CallFate:
        """The fate of the next dial of ``number`` (see :mod:`sim.fates`)."""
        fate = self.peek_fate(number, forced)
        self._dials[number] = self._dials.get(number, 0) + 1
        return fate

    def peek_fate(
        self, number: str, forced: str | None = None, at: float | None = None
    ) -> CallFate:
        """The fate the next dial of ``number`` would meet, without dialing
        (the clairvoyant bound of the pacing benchmark uses it)."""
        n = self._dials.get(number, 0)
        workload = self.workload_at(self.now() if at is None else at)
        return draw_fate(workload, call_rng(self.seed, number, n), forced)

    def workload_at(self, seconds: float) -> Workload:
        """The workload in force (phases applied), computed once per phase."""
        phase = sum(1 for p in self.workload.phases if p.start <= seconds)
        cached = self._phase_cache.get(phase)
        if cached is None:
            cached = self._phase_cache[phase] = self.workload.at(seconds)
        return cached

    def now(self) -> float:
        return self.clock.seconds() - self.started_at

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    # -- event formatting (field order as recorded) ---------------------------------
    @staticmethod
    def _block(c: SimChannel, prefix: str = "") -> Headers:
        keys = _BLOCK_KEYS.get(prefix) or _BLOCK_KEYS.setdefault(
            prefix, tuple(prefix + k for k in CHANNEL_FIELDS)
        )
        values = (
            c.name,
            str(c.state),
            STATE_DESC.get(c.state, "Unknown"),
            c.caller_num,
            c.caller_name,
            c.connected_num,
            c.connected_name,
            "en",
            "",
            c.context,
            c.exten,
            str(c.priority),
            c.uniqueid,
            c.linkedid,
        )
        return list(zip(keys, values, strict=True))

    def _chan_event(
        self, name: str, c: SimChannel, *extra: tuple[str, str], privilege: str = "call,all"
    ) -> None:
        if self._wants(name):
            self._emit([("Event", name), ("Privilege", privilege), *self._block(c), *extra])

    def _bridge_block(self, b: SimBridge) -> Headers:
        return [
            ("BridgeUniqueid", b.uniqueid),
            ("BridgeType", "basic"),
            ("BridgeTechnology", "simple_bridge" if b.kind == "basic" else "holding_bridge"),
            ("BridgeCreator", "<unknown>" if b.kind == "basic" else "dirigent"),
            ("BridgeName", "<unknown>" if b.owner is None else f"agent-{b.owner}"),
            ("BridgeNumChannels", str(len(b.members))),
            ("BridgeVideoSourceMode", "none"),
        ]

    def _dial_event(
        self, name: str, caller: SimChannel | None, dest: SimChannel, *extra: tuple[str, str]
    ) -> None:
        if not self._wants(name):
            return
        headers: Headers = [("Event", name), ("Privilege", "call,all")]
        if caller is not None:
            headers += self._block(caller)
        headers += self._block(dest, "Dest")
        headers += extra
        self._emit(headers)

    def _device(self, device: str, state: str) -> None:
        if not self._wants("DeviceStateChange"):
            return
        self._emit(
            [
                ("Event", "DeviceStateChange"),
                ("Privilege", "call,all"),
                ("Device", device),
                ("State", state),
            ]
        )

    # -- channel lifecycle ----------------------------------------------------------
    def _new_channel(
        self,
        name: str,
        uniqueid: str | None,
        linkedid: str | None,
        *,
        state: int,
        context: str,
        exten: str,
    ) -> SimChannel:
        uid = uniqueid or self._uid()
        if uid in self.channels:
            raise SimError("Uniqueid already in use")
        chan = SimChannel(
            name,
            uid,
            linkedid or uid,
            state=state,
            context=context,
            exten=exten,
            created=self.clock.seconds(),
        )
        self.channels[uid] = chan
        self.by_name[name] = chan
        self._chan_event("Newchannel", chan)
        return chan

    def _newexten(
        self,
        c: SimChannel,
        app: str,
        data: str,
        *,
        context: str | None = None,
        exten: str | None = None,
        priority: int | None = None,
    ) -> None:
        if context is not None:
            c.context = context
        if exten is not None:
            c.exten = exten
        c.priority = priority if priority is not None else c.priority
        c.app, c.app_data = app, data
        self._chan_event(
            "Newexten",
            c,
            ("Extension", c.exten),
            ("Application", app),
            ("AppData", data),
            privilege="dialplan,all",
        )

    def _setvar(self, c: SimChannel, name: str, value: str) -> None:
        c.variables[name] = value
        self._chan_event(
            "VarSet", c, ("Variable", name), ("Value", value), privilege="dialplan,all"
        )

    def _set_state(self, c: SimChannel, state: int) -> None:
        if c.state != state:
            c.state = state
            self._chan_event("Newstate", c)

    def _set_callerid(self, c: SimChannel, num: str, name: str) -> None:
        c.caller_num, c.caller_name = num, name
        self._chan_event(
            "NewCallerid", c, ("CID-CallingPres", "0 (Presentation Allowed, Not Screened)")
        )
        c.connected_num, c.connected_name = num, name
        self._chan_event("NewConnectedLine", c)

    def hangup_channel(
        self,
        c: SimChannel,
        cause: int = 16,
        *,
        soft: bool = True,
        tech_cause: str | None = None,
        before_hangup: Callable[[], None] | None = None,
    ) -> None:
        """End a channel: leave its bridge, emit the hang-up events, free its phone.

        ``cause`` is the Q.850 cause of the ``Hangup`` event.  ``soft``: the
        channel's dialplan ends first, which Asterisk reports as
        ``SoftHangupRequest`` with the APPUNLOAD flag (16; the flag, not the
        cause: a busy Local half shows SoftHangupRequest 16, Hangup 17)."""
        if not c.alive:
            return
        if c.dialing is not None:  # the caller of a Dial hangs up: the phone stops ringing
            self._end_dial(c, "CANCEL")
        c.alive = False
        for timer in c.timers:
            if timer.active():
                timer.cancel()
        if c.bridge:
            self._leave_bridge(c)
        extra: Headers = [("TechCause", tech_cause)] if tech_cause else []
        if c.on_moh:
            self._moh(c, False)  # MusicOnHold() returns before the channel goes
        if soft:
            self._chan_event("SoftHangupRequest", c, ("Cause", str(int(SoftHangup.APPUNLOAD))))
        if before_hangup is not None:
            before_hangup()
        self._chan_event(
            "Hangup",
            c,
            ("Cause", str(cause)),
            ("Cause-txt", CAUSE_TEXT.get(cause, "Unknown")),
            *extra,
        )
        self.channels.pop(c.uniqueid, None)
        if self.by_name.get(c.name) is c:
            del self.by_name[c.name]
        if c.agent and (phone := self.phones.get(c.agent)) and phone.channel == c.uniqueid:
            phone.channel = None
            self._device(f"PJSIP/{c.agent}", "NOT_INUSE")

    # -- bridges ------------------------------------------------------------------
    def _create_bridge(self, kind: str, owner: str | None = None) -> SimBridge:
        bridge = SimBridge(str(uuid.UUID(int=self._bridge_ids.getrandbits(128))), kind, owner=owner)
        self.bridges[bridge.uniqueid] = bridge
        self._emit(
            [("Event", "BridgeCreate"), ("Privilege", "call,all"), *self._bridge_block(bridge)]
        )
        return bridge

    def _enter_bridge(self, c: SimChannel, bridge: SimBridge) -> None:
        if c.bridge:
            self._leave_bridge(c)
        if c.on_moh:
            self._moh(c, False)
        bridge.members.append(c.uniqueid)
        c.bridge = bridge.uniqueid
        self._emit(
            [
                ("Event", "BridgeEnter"),
                ("Privilege", "call,all"),
                *self._bridge_block(bridge),
                *self._block(c),
            ]
        )
        self._on_bridged(bridge)

    def _leave_bridge(self, c: SimChannel) -> None:
        bridge = self.bridges.get(c.bridge or "")
        c.bridge = None
        if bridge is None:
            return
        bridge.members.remove(c.uniqueid)
        self._emit(
            [
                ("Event", "BridgeLeave"),
                ("Privilege", "call,all"),
                *self._bridge_block(bridge),
                *self._block(c),
            ]
        )
        if bridge.kind == "basic":
            # The remaining party continues its dialplan at the next priority,
            # which in every Dirigent context is Hangup().
            for uid in list(bridge.members):
                other = self.channels.get(uid)
                if other is not None:
                    self._later(other, 0.0, self.hangup_channel, other, 16)
            if not bridge.members:
                self._destroy_bridge(bridge)
        elif bridge.kind == "holding" and c.far == "agent":
            # the agent (the conference's marked user) left: end_marked puts its
            # callers out, and dirigent-join's next priority is Hangup()
            for uid in list(bridge.members):
                if (other := self.channels.get(uid)) is not None:
                    self._later(other, 0.0, self.hangup_channel, other, 16)
            if not bridge.members:
                self._destroy_bridge(bridge)
        elif not bridge.members:
            self._destroy_bridge(bridge)

    def _destroy_bridge(self, bridge: SimBridge) -> None:
        self.bridges.pop(bridge.uniqueid, None)
        self._emit(
            [("Event", "BridgeDestroy"), ("Privilege", "call,all"), *self._bridge_block(bridge)]
        )

    def _on_bridged(self, bridge: SimBridge) -> None:
        """A customer meeting an agent starts talking; the talk time is the customer's."""
        members = [self.channels[u] for u in bridge.members if u in self.channels]
        agents = [m for m in members if m.far == "agent"]
        for m in members:
            if (
                agents
                and m.far in ("live", "machine", "customer")
                and not m.variables.get("_talking")
            ):
                m.variables["_talking"] = "1"
                if m.far == "machine":
                    talk = self.workload_at(self.now()).amd.undetected_machine_talk
                else:
                    talk = float(m.variables.get("SIM_TALK") or self._talk_time(m))
                self._count("connected")
                self._later(m, talk, self.hangup_channel, m, 16)

    def _talk_time(self, chan: SimChannel) -> float:
        if chan.fate is not None:
            return chan.fate.talk
        if chan.far == "customer" and self.inbound_talk is not None:
            return self.rng.expovariate(1.0 / self.inbound_talk)
        return self.workload.talk.sample(self.rng)

    def _moh(self, c: SimChannel, on: bool) -> None:
        c.on_moh = on
        self._chan_event(
            "MusicOnHoldStart" if on else "MusicOnHoldStop",
            c,
            *([("Class", "default")] if on else []),
        )

    # -- originate ------------------------------------------------------------------
    def originate(
        self, fields: dict[str, Any], action_id: str, respond: Callable[[Headers], None]
    ) -> None:
        """Handle ``Action: Originate`` (async); ``respond`` gets the events
        that carry this ActionID (the OriginateResponse)."""
        try:
            timeout = float(fields.get("Timeout") or 30000) / 1000.0
        except ValueError:
            timeout = 30.0
        priority = str(fields.get("Priority") or "1")
        request = _Dial(
            dial=fields.get("Channel", ""),
            target=_Target(
                fields.get("Context"),
                fields.get("Exten"),
                fields.get("Application"),
                fields.get("Data", ""),
                int(priority) if priority.isdigit() else 1,
            ),
            timeout=timeout,
            caller=_parse_callerid(fields.get("CallerID", "")),
            variables=dict(v.split("=", 1) for v in fields.get("Variable", []) if "=" in v),
            uid=fields.get("ChannelId") or None,
            other=fields.get("OtherChannelId") or None,
            action_id=action_id,
            respond=respond,
        )
        self._count("originate")
        self._later(None, 0.0, self._start_originate, request)

    def _originate_response(
        self, req: _Dial, ok: bool, channel: str, reason: int, uid: str | None
    ) -> None:
        headers: Headers = [
            ("Event", "OriginateResponse"),
            ("Privilege", "call,all"),
            ("ActionID", req.action_id),
            ("Response", "Success" if ok else "Failure"),
            ("Channel", channel),
        ]
        target = req.target
        if target.application:
            headers += [("Application", target.application), ("Data", target.data)]
        else:
            headers += [("Context", target.context or ""), ("Exten", target.exten or "")]
        headers += [
            ("Reason", str(reason)),
            ("Uniqueid", uid or "<null>"),
            ("CallerIDNum", req.caller[0] or "<unknown>"),
            ("CallerIDName", req.caller[1] or "<unknown>"),
        ]
        if uid and (chan := self.channels.get(uid)) is not None and chan.originating is req:
            chan.originating = None
        req.respond(headers)

    def _failed(self, req: _Dial, reason: int, uid: str | None) -> None:
        """OriginateResponse Failure; the Channel header holds the dial string."""
        self._originate_response(req, False, req.dial, reason, uid)

    def _start_originate(self, req: _Dial) -> None:
        if m := _TRUNK_RE.match(req.dial):
            self._originate_trunk(m.group("a") or m.group("b"), req)
        elif m := _AGENT_RE.match(req.dial):
            self._originate_agent(m.group("ext"), req)
        elif m := _LOCAL_RE.match(req.dial):
            self._originate_local(m.group("exten"), m.group("context"), req)
        else:
            # Unknown technology or endpoint: no channel events at all (as recorded).
            self._failed(req, 0, req.uid)

    def _outgoing(self, name: str, req: _Dial, context: str, exten: str) -> SimChannel:
        chan = self._new_channel(name, req.uid, None, state=0, context=context, exten=exten)
        chan.originating = req
        self._newexten(chan, "AppDial2", "(Outgoing Line)", priority=1)
        for key, value in req.variables.items():
            self._setvar(chan, key, value)
        if req.caller[0]:
            self._set_callerid(chan, req.caller[0], req.caller[1])
        return chan

    def _originate_trunk(self, number: str, req: _Dial) -> None:
        fate = self.fate_of(number, req.variables.get("SIM_OUTCOME"))
        outcome = fate.outcome
        seq = next(self._chan_seq)
        chan = self._outgoing(f"PJSIP/customers-{seq:08x}", req, "from-customers", "s")
        chan.far = outcome if outcome in ("live", "machine") else ""
        chan.fate = fate
        if self.fate_log is not None:
            self.fate_log[chan.uniqueid] = fate
        self._dial_event("DialBegin", None, chan, ("DialString", req.dial.split("/", 1)[1]))
        self._count(f"trunk_{outcome}")

        def fail(cause: int, status: str) -> None:
            # The order differs by SIP response in the recording (sip_calls.ami):
            # 486: OriginateResponse before DialEnd; 404: after DialEnd;
            # 503: after the Hangup.
            tech = SIP_OF_CAUSE.get(cause)
            self._chan_event(
                "HangupRequest", chan, ("Cause", str(cause)), ("TechCause", tech or "")
            )
            if cause == 17:
                self._failed(req, 0, chan.uniqueid)
            self._dial_event("DialEnd", None, chan, ("DialStatus", status))
            if cause == 1:
                self._failed(req, 0, chan.uniqueid)
            self.hangup_channel(chan, cause, soft=False, tech_cause=tech)
            if cause == 34:
                self._failed(req, 0, chan.uniqueid)

        if outcome == "busy":
            self._later(chan, fate.detect, fail, 17, "BUSY")
            return
        if outcome in ("invalid", "congestion"):
            cause, status = (1, "NOANSWER") if outcome == "invalid" else (34, "CONGESTION")
            self._later(chan, fate.detect, fail, cause, status)
            return
        ring = float(req.variables.get("SIM_RING") or fate.ring)
        rings_out = outcome == "no_answer" or ring >= req.timeout
        # recorded: a call that is answered shows Newstate before DialState, a
        # call that rings out the other way round
        self._later(chan, 0.05, self._ringing, chan, not rings_out)
        if rings_out:
            self._later(chan, req.timeout, self._ring_timeout, chan, req)
        else:
            self._later(chan, ring, self._answer_outgoing, chan, req)

    def _ringing(self, chan: SimChannel, state_first: bool = True) -> None:
        if state_first:
            self._set_state(chan, 5)
            self._device(chan.name.rsplit("-", 1)[0], "RINGING")
        self._dial_event("DialState", None, chan, ("DialStatus", "RINGING"))
        if not state_first:
            self._set_state(chan, 5)
            self._device(chan.name.rsplit("-", 1)[0], "RINGING")

    def _ring_timeout(self, chan: SimChannel, req: _Dial) -> None:
        self._failed(req, 3, chan.uniqueid)
        self.hangup_channel(chan, 19, soft=False, tech_cause="480")

    def _answer_outgoing(self, chan: SimChannel, req: _Dial) -> None:
        self._set_state(chan, 6)
        self._device(chan.name.rsplit("-", 1)[0], "INUSE")
        self._dial_event("DialEnd", None, chan, ("DialStatus", "ANSWER"))
        self._originate_response(req, True, chan.name, 4, chan.uniqueid)
        self._run_target(chan, req.target)

    def _originate_agent(self, ext: str, req: _Dial) -> None:
        phone = self.phones.get(ext)
        if phone is None or not phone.registered:
            # unknown endpoint / no contact: Reason 0 and no channel events (as recorded)
            self._failed(req, 0, req.uid)
            return
        seq = next(self._chan_seq)
        chan = self._outgoing(f"PJSIP/{ext}-{seq:08x}", req, "agents", "s")
        chan.far, chan.agent = "agent", ext
        self._dial_event("DialBegin", None, chan, ("DialString", ext))
        if phone.channel is not None:

            def busy() -> None:
                self._chan_event("HangupRequest", chan, ("Cause", "17"), ("TechCause", "486"))
                self._failed(req, 0, chan.uniqueid)
                self._dial_event("DialEnd", None, chan, ("DialStatus", "BUSY"))
                chan.agent = None  # the phone's own call is not this one
                self.hangup_channel(chan, 17, soft=False, tech_cause="486")

            self._later(chan, 0.02, busy)
            return
        phone.channel = chan.uniqueid
        self._later(chan, 0.02, self._ringing, chan)
        if phone.answer_delay is None:  # never answers: the Originate's time-out
            self._later(chan, req.timeout, self._ring_timeout, chan, req)
        else:
            self._later(chan, phone.answer_delay, self._answer_outgoing, chan, req)

    #: what the lab's [sim] extensions do (extensions.conf of the recorded PBX)
    _SIM_EXTENS = {
        "answer": "answer",
        "agent": "answer",
        "customer": "answer",
        "human": "answer",
        "machine": "answer",
        "silence": "answer",
        "busy": "busy",
        "congestion": "congestion",
        "noanswer": "ring",
    }

    def _originate_local(self, exten: str, context: str, req: _Dial) -> None:
        seq = next(self._chan_seq)
        base = f"Local/{exten}@{context}-{seq:08x}"
        # as recorded: both halves appear first, then the ;1 half's dialplan
        one = self._new_channel(f"{base};1", req.uid, None, state=0, context=context, exten=exten)
        two = self._new_channel(
            f"{base};2",
            req.other or f"{one.uniqueid};2",
            one.uniqueid,
            state=4,
            context=context,
            exten=exten,
        )
        one.originating, two.in_pbx = req, True
        self._newexten(one, "AppDial2", "(Outgoing Line)", priority=1)
        for key, value in req.variables.items():
            self._setvar(one, key, value)
        if req.caller[0]:
            self._set_callerid(one, req.caller[0], req.caller[1])
        self._dial_event("DialBegin", None, one, ("DialString", f"{exten}@{context}"))
        kind = self._SIM_EXTENS.get(exten) if context == "sim" else "answer"
        two.far = {"agent": "agent", "customer": "customer", "machine": "machine"}.get(
            exten, "live"
        )
        one.far = two.far
        if kind is None:
            # unknown extension: the ;2 half fails at once, Reason 0, cause 0
            self._failed(req, 0, one.uniqueid)
            self.hangup_channel(two, 0)
            self.hangup_channel(one, 0)
            return
        if kind in ("busy", "congestion"):
            cause, reason, status = (17, 5, "BUSY") if kind == "busy" else (34, 8, "CONGESTION")
            self._newexten(two, kind.capitalize(), "10", priority=2)
            self._dial_event("DialEnd", None, one, ("DialStatus", status))
            self._failed(req, reason, one.uniqueid)
            self.hangup_channel(two, cause)
            self.hangup_channel(one, 0, soft=False)
            return
        if kind == "ring":
            self._newexten(two, "Ringing", "", priority=2)
            self._dial_event("DialState", None, one, ("DialStatus", "RINGING"))

            def ring_out() -> None:
                self._failed(req, 3, one.uniqueid)
                self.hangup_channel(two, 19)
                self.hangup_channel(one, 19, soft=False)

            self._later(one, req.timeout, ring_out)
            return
        self._newexten(two, "Answer", "", priority=2)
        self._set_state(two, 6)
        self._set_state(one, 6)
        self._dial_event("DialEnd", None, one, ("DialStatus", "ANSWER"))
        self._originate_response(req, True, one.name, 4, one.uniqueid)
        if exten == "agent":
            talk = float(req.variables.get("TALK") or 5)
            self._later(two, talk, self._hangup_pair, one, two)
        self._run_target(one, req.target)

    def _hangup_pair(self, one: SimChannel, two: SimChannel) -> None:
        self.hangup_channel(two, 16)
        self.hangup_channel(one, 16)

    # -- dialplan -------------------------------------------------------------------
    def _run_target(self, chan: SimChannel, target: _Target) -> None:
        chan.in_pbx = True
        if target.application:
            self._newexten(chan, target.application, target.data, context="", exten="", priority=1)
            if target.application.lower() == "wait":
                try:
                    seconds = float(target.data or 0)
                except ValueError:
                    seconds = 0.0
                self._later(chan, seconds, self.hangup_channel, chan, 16)
            return
        self.run_dialplan(chan, target.context or "", target.exten or "s", target.priority)

    def run_dialplan(self, chan: SimChannel, context: str, exten: str, priority: int = 1) -> None:
        """Run ``context,exten,priority`` for a channel that is already Up or ringing in.

        A context or extension the dialplan does not have runs nothing: the
        channel hangs up (Asterisk logs "sent to invalid extension but no
        invalid handler"), cause 0, after the APPUNLOAD soft hang-up."""
        chan.in_pbx = True
        if not self.dialplan.exists(context, exten):
            chan.context, chan.exten, chan.priority = context, exten, priority
            self._count("invalid_extension")
            self.hangup_channel(chan, 0)
            return
        handler = {
            "dirigent-inbound": self._ctx_inbound,
            "inbound": self._ctx_inbound,
            "dirigent-outbound": self._ctx_outbound,
            "dirigent-agent": self._ctx_agent,
            "dirigent-join": self._ctx_join,
            "dirigent-connect": self._ctx_connect,
            "dirigent-abandon": self._ctx_abandon,
            "dirigent-message": self._ctx_message,
        }.get(context, self._ctx_wait)
        handler(chan, context, exten, priority)

    def _ctx_wait(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        self._newexten(chan, "Wait", "3600", context=context, exten=exten, priority=priority)
        self._later_customer_patience(chan)

    def _later_customer_patience(self, chan: SimChannel) -> None:
        if chan.far == "live":
            # A person who hears nothing hangs up after a few seconds (this is
            # what an abandoned call sounds like from the customer's side).
            patience = chan.fate.patience if chan.fate else self.rng.uniform(3.0, 8.0)
            self._later(chan, patience, self._hang_if_alone, chan)
        elif chan.far == "machine":
            self._later(chan, 30.0, self._hang_if_alone, chan)

    def _inbound_patience(self, chan: SimChannel) -> None:
        """An inbound caller waiting alone gives up in time (one patience per wait)."""
        if chan.far == "customer" and (chan.patience is None or not chan.patience.active()):
            patience = self.rng.expovariate(1.0 / self.inbound_patience_mean)
            chan.patience = self._later(chan, patience, self._hang_if_alone, chan)

    def _hang_if_alone(self, chan: SimChannel) -> None:
        if not self._with_agent(chan):
            self.hangup_channel(chan, 16)

    def _with_agent(self, chan: SimChannel) -> bool:
        """In a bridge with an agent's leg (a caller alone in an agent's
        conference hears silence: it is alone)."""
        bridge = self.bridges.get(chan.bridge or "")
        return bridge is not None and any(
            (m := self.channels.get(uid)) is not None and m.far == "agent" for uid in bridge.members
        )

    def _ctx_inbound(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        if priority >= FALLBACK_PRIORITY:  # Dirigent sends the caller to the fallback
            self._end_inbound_wait(chan)
            self._moh(chan, False)
            chan.context, chan.exten = context, exten
            self._fallback_queue(chan)
            return
        if priority == WAIT_PRIORITY:  # Goto(...,wait) after a failed ring: not announced
            chan.context, chan.exten = context, exten
            self._inbound_wait(chan)
            return
        self._newexten(
            chan,
            "NoOp",
            f"inbound customer call on {chan.name}",
            context=context,
            exten=exten,
            priority=1,
        )
        if chan.state != 6:
            self._newexten(chan, "Answer", "", priority=2)
            self._set_state(chan, 6)
        # Set(__DIRIGENT_QUEUE=${EXTEN}): a transfer into another queue's
        # extension names that queue (in its UserEvents and its fallback)
        queue = (
            exten if exten not in ("s", "") else chan.variables.get("DIRIGENT_QUEUE") or "default"
        )
        self._newexten(chan, "Set", f"DIRIGENT_QUEUE={queue}", priority=3)
        self._setvar(chan, "DIRIGENT_QUEUE", queue)
        self._newexten(
            chan,
            "UserEvent",
            f"DirigentInbound,Queue: {queue},CallerIDNum: {chan.caller_num},"
            f"CallUniqueid: {chan.uniqueid}",
            priority=4,
        )
        self._chan_event(
            "UserEvent",
            chan,
            ("UserEvent", "DirigentInbound"),
            ("Queue", queue),
            ("CallerIDNum", chan.caller_num),
            ("CallUniqueid", chan.uniqueid),
            privilege="user,all",
        )
        self._inbound_wait(chan)

    def _inbound_wait(self, chan: SimChannel) -> None:
        """``dirigent-inbound``'s label ``wait``: hold music for
        ``${DIRIGENT_WAIT}`` (``fallback_after``), then the fallback."""
        self._newexten(
            chan, "MusicOnHold", f"default,{int(self.fallback_after)}", priority=WAIT_PRIORITY
        )
        self._moh(chan, True)
        self._end_inbound_wait(chan)  # only this, the latest pass, may fall back
        chan.fallback = self._later(chan, self.fallback_after, self._inbound_fallback, chan)
        self._inbound_patience(chan)

    def _inbound_fallback(self, chan: SimChannel) -> None:
        chan.fallback = None
        if chan.bridge is None and chan.on_moh and chan.context in ("dirigent-inbound", "inbound"):
            self._moh(chan, False)
            self._count("inbound_fallback")
            queue = chan.variables.get("DIRIGENT_QUEUE", "")
            self._newexten(chan, "UserEvent", f"DirigentFallback,Queue: {queue}", priority=6)
            self._chan_event(
                "UserEvent",
                chan,
                ("UserEvent", "DirigentFallback"),
                ("Queue", queue),
                ("CallUniqueid", chan.uniqueid),
                privilege="user,all",
            )
            self._fallback_queue(chan)

    def _fallback_queue(self, chan: SimChannel) -> None:
        """``dirigent-inbound`` from its GotoIf (the priority Dirigent's
        fallback Redirect names): the PBX's own fallback queue, unannounced."""
        self._newexten(chan, "GotoIf", '$["" = "voicemail"]?voicemail', priority=FALLBACK_PRIORITY)
        self._newexten(chan, "Queue", "fallback,,,,300", priority=FALLBACK_PRIORITY + 1)

    def _ctx_outbound(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        self._newexten(
            chan,
            "NoOp",
            f"outbound call {chan.variables.get('DIRIGENT_ATTEMPT', '')}",
            context=context,
            exten=exten,
            priority=1,
        )
        use_amd = self.amd and chan.variables.get("DIRIGENT_AMD", "1") != "0"
        if use_amd:
            self._newexten(chan, "AMD", "", priority=4)
            self._later(chan, self.workload_at(self.now()).amd.delay, self._amd_result, chan)
        else:
            self._wait_for_dirigent(chan, self._connect_limit())
            self._later_customer_patience(chan)

    def _connect_limit(self) -> float:
        """``${DIRIGENT_CONNECT_LIMIT}`` (the shipped [globals]: 2 s)."""
        try:
            return float(self.globals.get("DIRIGENT_CONNECT_LIMIT", "2"))
        except ValueError:
            return 2.0

    def _amd_result(self, chan: SimChannel) -> None:
        if chan.fate is not None:
            machine = chan.fate.amd_says_machine
        else:
            amd = self.workload_at(self.now()).amd
            rate = amd.machine_detected if chan.far == "machine" else amd.person_misread
            machine = self.rng.random() < rate
        # the silence AMD heard: never more than the time since the answer
        silence = min(self.amd_silence_ms, round(1000 * self.workload_at(self.now()).amd.delay))
        status, cause = (
            ("MACHINE", "LONGGREETING-1500-1500")
            if machine
            else ("HUMAN", f"HUMAN-{silence}-{self.amd_silence_ms}")
        )
        self._setvar(chan, "AMDSTATUS", status)
        self._setvar(chan, "AMDCAUSE", cause)
        self._newexten(
            chan, "UserEvent", f"DirigentAMD,Status: {status},Cause: {cause}", priority=5
        )
        self._chan_event(
            "UserEvent",
            chan,
            ("UserEvent", "DirigentAMD"),
            ("Status", status),
            ("Cause", cause),
            privilege="user,all",
        )
        if machine:
            self._newexten(chan, "Wait", "60", priority=MACHINE_WAIT_PRIORITY)
        else:  # the greeting ended `silence` ms ago (the cause's first figure)
            self._wait_for_dirigent(chan, self._connect_limit() - silence / 1000)
        self._later_customer_patience(chan)

    def _wait_for_dirigent(self, chan: SimChannel, net: float) -> None:
        """``(person),Wait(${NET})``: a person Dirigent has not moved by then
        hears the abandon message from the PBX (the dialplan's net)."""
        self._newexten(chan, "Wait", f"{net:g}", priority=NET_PRIORITY)
        self._later(chan, net, self._net, chan, chan.gotos)

    def _net(self, chan: SimChannel, gotos: int) -> None:
        if chan.gotos != gotos or chan.bridge is not None:
            return  # Dirigent moved it (a Redirect ends the Wait)
        mark = f"abandoned/{chan.uniqueid}"
        self.astdb[("dirigent", mark)] = str(int(self.clock.seconds()))  # ${EPOCH}
        self._newexten(chan, "Set", f"DB(dirigent/{mark})", priority=NET_PRIORITY + 1)
        attempt = chan.variables.get("DIRIGENT_ATTEMPT", "")
        self._newexten(
            chan, "UserEvent", f"DirigentAbandoned,Attempt: {attempt}", priority=NET_PRIORITY + 2
        )
        self._chan_event(
            "UserEvent",
            chan,
            ("UserEvent", "DirigentAbandoned"),
            ("Attempt", attempt),
            privilege="user,all",
        )
        self._count("net_abandon")
        self.run_dialplan(chan, "dirigent-abandon", "s", 1)

    def _ctx_agent(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        """Nailed-up agent leg: answered, parked in the agent's own holding bridge."""
        agent = exten  # ConfBridge(agent-${EXTEN}) in extensions_dirigent.conf
        self._newexten(
            chan, "ConfBridge", f"agent-{agent}", context=context, exten=exten, priority=1
        )
        existing = [b for b in self.bridges.values() if b.owner == agent]
        bridge = existing[0] if existing else self._create_bridge("holding", owner=agent)
        self._enter_bridge(chan, bridge)

    def _ctx_join(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        """Customer moved into agent ``exten``'s bridge (no ringing)."""
        self._newexten(
            chan, "ConfBridge", f"agent-{exten}", context=context, exten=exten, priority=1
        )
        # wait_marked: in a conference the agent is not in (yet), the caller
        # waits in silence until the agent's line comes in (or it gives up)
        bridge = next((b for b in self.bridges.values() if b.owner == exten), None)
        self._enter_bridge(chan, bridge or self._create_bridge("holding", owner=exten))
        if not self._with_agent(chan):
            self._later_customer_patience(chan)
            self._inbound_patience(chan)

    def _ctx_connect(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        """``Dial(PJSIP/<exten>,${DIRIGENT_RING})``: ring the agent phone
        ``exten`` (as long as the caller's ``DIRIGENT_RING`` says, else the
        dialplan's default of 20 s) and bridge on answer."""
        ring_for = self._ring_time(chan)
        self._newexten(
            chan, "Dial", f"PJSIP/{exten},{ring_for:g}", context=context, exten=exten, priority=2
        )
        if chan.on_moh:
            self._moh(chan, False)
        phone = self.phones.get(exten)
        seq = next(self._chan_seq)
        if phone is None or not phone.registered or phone.channel is not None:
            status = "CHANUNAVAIL" if phone is None or not phone.registered else "BUSY"
            self._later(chan, 0.05, self._connect_failed, chan, status)
            return
        agent = self._new_channel(
            f"PJSIP/{exten}-{seq:08x}", None, chan.linkedid, state=0, context="agents", exten=exten
        )
        agent.far, agent.agent = "agent", exten
        phone.channel = agent.uniqueid
        chan.dialing = agent.uniqueid
        self._dial_event("DialBegin", chan, agent, ("DialString", exten))
        self._later(agent, 0.02, self._set_state, agent, 5)
        if phone.answer_delay is None or phone.answer_delay >= ring_for:
            self._later(agent, ring_for, self._connect_rang_out, chan, agent)
        else:
            self._later(agent, phone.answer_delay, self._connect_answer, chan, agent)

    def _ring_time(self, chan: SimChannel) -> float:
        value = chan.variables.get(RING_VARIABLE) or self.globals.get(RING_VARIABLE) or "20"
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0.0
        return seconds if seconds > 0 else float("inf")  # app_dial: invalid = no time-out

    def _connect_rang_out(self, chan: SimChannel, agent: SimChannel) -> None:
        """The Dial's time-out: the phone stops ringing, NOANSWER."""
        self._end_dial(chan, "NOANSWER")
        self._connect_failed(chan, "NOANSWER")

    def _end_dial(self, chan: SimChannel, status: str) -> None:
        """The caller's Dial ends unanswered (time-out, or the caller was
        Redirected away): the phone's channel is hung up."""
        agent = self.channels.get(chan.dialing or "")
        chan.dialing = None
        if agent is None or not agent.alive:
            return
        self._dial_event("DialEnd", chan, agent, ("DialStatus", status))
        self.hangup_channel(agent, 16 if status == "CANCEL" else 19)

    def _connect_failed(self, chan: SimChannel, status: str) -> None:
        if chan.context != "dirigent-connect" or not chan.alive:
            return  # Redirected away meanwhile: the Dial's next priority never ran
        self._count(f"connect_{status.lower()}")
        self._newexten(chan, "UserEvent", f"DirigentConnectFailed,DialStatus: {status}", priority=3)
        self._chan_event(
            "UserEvent",
            chan,
            ("UserEvent", "DirigentConnectFailed"),
            ("DialStatus", status),
            privilege="user,all",
        )
        # Goto(dirigent-inbound,${DIRIGENT_QUEUE},wait): back to waiting, not
        # announced again; Dirigent rings the next agent, or the fallback comes
        queue = chan.variables.get("DIRIGENT_QUEUE", "")
        self._newexten(chan, "Goto", f"dirigent-inbound,{queue},wait", priority=4)
        self.run_dialplan(chan, "dirigent-inbound", queue, WAIT_PRIORITY)

    def _connect_answer(self, chan: SimChannel, agent: SimChannel) -> None:
        if chan.dialing != agent.uniqueid:  # that Dial is over (Redirected, hung up)
            return
        chan.dialing = None
        self._set_state(agent, 6)
        self._dial_event("DialEnd", chan, agent, ("DialStatus", "ANSWER"))
        bridge = self._create_bridge("basic")
        self._enter_bridge(agent, bridge)
        self._enter_bridge(chan, bridge)

    def _ctx_abandon(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        # Playback(${DIRIGENT_ABANDON_SOUND}): the [globals] of the shipped dialplan
        sound = self.globals.get("DIRIGENT_ABANDON_SOUND", "dirigent/abandon")
        self._newexten(chan, "Playback", sound, context=context, exten=exten, priority=1)
        self._count("abandon_message")
        self._later(chan, 4.0, self.hangup_channel, chan, 16)

    def _ctx_message(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        """The machine message (only if the shipped dialplan has the context)."""
        self._newexten(
            chan, "Playback", "dirigent/message", context=context, exten=exten, priority=1
        )
        self._count("machine_message")
        self._later(chan, 8.0, self.hangup_channel, chan, 16)

    # -- inbound traffic --------------------------------------------------------------
    def start_inbound(self, calls_per_hour: float, queue: str = "sales") -> None:
        """Customers call in as a Poisson process into ``dirigent-inbound``."""
        self.stop_inbound()
        if calls_per_hour <= 0:
            return
        rate = calls_per_hour / 3600.0

        def arrive() -> None:
            self.inbound_call(queue=queue)
            self._inbound = self.clock.callLater(self.rng.expovariate(rate), arrive)

        self._inbound = self.clock.callLater(self.rng.expovariate(rate), arrive)

    def stop_inbound(self) -> None:
        if self._inbound is not None and self._inbound.active():
            self._inbound.cancel()
        self._inbound = None

    def inbound_call(
        self, *, queue: str = "sales", caller: str | None = None, did: str = "5001"
    ) -> SimChannel:
        """One customer calls a DID routed into ``dirigent-inbound``."""
        seq = next(self._chan_seq)
        number = caller or f"+4930{self.rng.randrange(1000000, 9999999)}"
        chan = self._new_channel(
            f"PJSIP/customers-{seq:08x}", None, None, state=4, context="from-customers", exten=did
        )
        chan.far = "customer"
        self._set_callerid(chan, number, "Customer")
        self._newexten(chan, "Goto", f"dirigent-inbound,{queue},1", priority=1)
        chan.variables["DIRIGENT_QUEUE"] = queue
        self._count("inbound")
        self.run_dialplan(chan, "dirigent-inbound", queue, 1)
        return chan

    # -- actions other than Originate ---------------------------------------------------
    def find(self, name: str) -> SimChannel:
        chan = self.by_name.get(name) or self.channels.get(name)
        if chan is None or not chan.alive:
            raise SimError("No such channel")
        return chan

    def redirect(self, channel: str, context: str, exten: str, priority: int) -> None:
        chan = self.find(channel)
        if chan.in_transit:  # the previous Redirect's goto has not run yet
            raise SimError("Redirect failed, channel not up.")
        self._end_inbound_wait(chan)
        if chan.dialing is not None:  # the Dial in dirigent-connect ends: the phone stops
            self._end_dial(chan, "CANCEL")
        if chan.bridge:
            self._leave_bridge(chan)
        if chan.on_moh:
            self._moh(chan, False)
        chan.in_transit = True
        chan.gotos += 1
        self._later(chan, 0.0, self._move, chan, context, exten, priority)

    def _move(self, chan: SimChannel, context: str, exten: str, priority: int) -> None:
        chan.in_transit = False  # the PBX loop cleared AST_SOFTHANGUP_ASYNCGOTO: it jumps
        self.run_dialplan(chan, context, exten, priority)

    def bridge(self, channel1: str, channel2: str) -> None:
        one, two = self.find(channel1), self.find(channel2)
        bridge = self._create_bridge("basic")
        self._enter_bridge(one, bridge)
        self._enter_bridge(two, bridge)

    def hangup(self, channel: str, cause: int = 16) -> int:
        if channel.startswith("/") and channel.endswith("/") and len(channel) > 2:
            pattern = re.compile(channel[1:-1])
            victims = [c for c in list(self.channels.values()) if pattern.search(c.name)]
            for c in victims:
                self.hangup_channel(c, cause)
            return len(victims)
        self.hangup_channel(self.find(channel), cause)
        return 1

    def setvar(self, channel: str | None, name: str, value: str) -> None:
        if not channel:
            self.globals[name] = value
            return
        self._setvar(self.find(channel), name, value)

    def getvar(self, channel: str | None, name: str) -> str:
        if not channel:
            return self.globals.get(name, "")
        chan = self.find(channel)
        if name == "CALLERID(num)":
            return chan.caller_num
        return chan.variables.get(name, "")

    def music_on_hold(self, channel: str, on: bool) -> None:
        chan = self.find(channel)
        if chan.on_moh != on:
            self._moh(chan, on)

    def message_send(self, to: str) -> None:
        if not to:
            raise SimError("No 'To' address specified.")
        tech, _, rest = to.partition(":")
        if tech.lower() != "pjsip" or not rest:
            raise SimError("Message technology not found.")
        phone = self.phones.get(rest.split("@")[0])
        if phone is None or not phone.registered:
            raise SimError("Message failed to send.")

    def user_event(self, fields: list[tuple[str, str]]) -> None:
        self._emit([("Event", "UserEvent"), ("Privilege", "user,all"), *fields])

    def set_registered(self, ext: str, registered: bool) -> None:
        self.phones[ext].registered = registered
        self._device(f"PJSIP/{ext}", "NOT_INUSE" if registered else "UNAVAILABLE")

    def core_show_channels(self, action_id: str) -> list[Headers]:
        items = []
        now = self.clock.seconds()
        for c in self.channels.values():
            secs = int(now - c.created)
            duration = f"{secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}"
            items.append(
                [
                    ("Event", "CoreShowChannel"),
                    ("ActionID", action_id),
                    *self._block(c)[:14],
                    ("Application", c.app),
                    ("ApplicationData", c.app_data),
                    ("Duration", duration),
                    ("BridgeId", c.bridge or ""),
                ]
            )
        return items

    def shutdown(self, restart: bool = False) -> None:
        """``core stop now`` / ``core restart now``: every call ends, then ``Shutdown``.

        As recorded (shutdown.ami): every channel first gets a
        ``SoftHangupRequest`` with the SHUTDOWN flag (4), newest first; then
        each ends (newest first) with cause 0: a Local ``;2`` half queues a
        hang-up on its ``;1`` (``HangupRequest`` cause 0) before its own
        ``Hangup``; a channel that ran dialplan reports its end (APPUNLOAD)
        after MusicOnHold stopped.  A call still ringing is answered to its
        Originate with Reason 1 (``ast_read`` gave nothing: AST_CONTROL_HANGUP).
        Nailed-up agent legs go like every other call: nothing survives."""
        self.stop_inbound()
        doomed = [c for c in reversed(self.channels.values()) if c.alive]
        for chan in doomed:
            self._chan_event("SoftHangupRequest", chan, ("Cause", str(int(SoftHangup.SHUTDOWN))))
        for chan in doomed:
            if not chan.alive:
                continue
            peer = None
            if chan.name.endswith(";2"):
                peer = self.by_name.get(chan.name[:-1] + "1")

            def queue_hangup(peer: SimChannel | None = peer) -> None:
                if peer is not None and peer.alive:
                    self._chan_event("HangupRequest", peer, ("Cause", "0"))

            pending = chan.originating
            chan.originating = None
            self.hangup_channel(chan, 0, soft=chan.in_pbx, before_hangup=queue_hangup)
            if pending is not None:
                self._failed(pending, 1, chan.uniqueid)
        self.booted = False
        self._emit(
            [
                ("Event", "Shutdown"),
                ("Privilege", "system,all"),
                ("Shutdown", "Cleanly"),
                ("Restart", "True" if restart else "False"),
            ]
        )

    def fully_booted(self) -> Headers:
        """The end of a boot: ``booted`` again, and the ``FullyBooted`` Asterisk
        broadcasts then (field order of the boot event, not the login one)."""
        self.booted = True
        headers: Headers = [
            ("Event", "FullyBooted"),
            ("Privilege", "system,all"),
            ("Status", "Fully Booted"),
            ("Uptime", "0"),
            ("LastReload", "0"),
        ]
        self._emit(headers)
        return headers


def action_fields(headers: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """An action's headers as the model takes them: first value of each
    header (also under its lower-case name); ``Variable`` as the list of all."""
    out: dict[str, Any] = {"Variable": []}
    for key, value in headers:
        if key.lower() == "variable":
            out["Variable"].append(value)
            out.setdefault("variable", value)
        else:
            out.setdefault(key, value)
            out.setdefault(key.lower(), value)
    return out


@dataclass(frozen=True)
class _Dial:
    """One Originate request, as the model carries it from step to step."""

    dial: str
    target: _Target
    timeout: float
    caller: tuple[str, str]
    variables: dict[str, str]
    uid: str | None
    other: str | None
    action_id: str
    respond: Callable[[Headers], None]


@dataclass(frozen=True)
class _Target:
    context: str | None
    exten: str | None
    application: str | None
    data: str
    priority: int


def _parse_callerid(value: str) -> tuple[str, str]:
    """``"Name" <number>`` → (number, name)."""
    m = re.match(r'^\s*"?([^"<]*)"?\s*<([^>]*)>\s*$', value)
    if m:
        return m.group(2).strip(), m.group(1).strip()
    return value.strip(), ""
