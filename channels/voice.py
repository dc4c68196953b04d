"""The voice channel of one PBX: its callers to agents, through the telephony port.

One :class:`VoiceInbound` per PBX, all registered with one
:class:`center.hub.Hub`.  The PBX announces a waiting caller
(:class:`core.telephony.CallWaiting`: answered, on hold music, for a queue).
The adapter turns that into a voice interaction it owns in the hub's
universal queue and carries out the hub's offers for it with
:meth:`Telephony.connect_to_agent`:

* agents rung per call (``mode = "ring"``): the agent's phone is rung for
  the caller; the call is accepted when the caller enters a bridge; a failed
  ring (:class:`AgentRingFailed`: busy, unreachable, no answer) declines the
  offer, pauses the agent with that reason and re-routes the caller, who is
  back on hold;
* nailed-up agents (``mode = "nailed"``, as the predictive dialer needs):
  the agent's phone is kept on the line in its own bridge
  (:meth:`Telephony.keep_line`); the caller joins it without ringing.

(How the shipped Asterisk dialplan does each of these is
:mod:`asterisk.port`'s business.)

A caller hanging up while waiting is counted abandoned (with the wait); one
hanging up while connected ends the interaction (agent to wrap-up).  After a
PBX link loss, waiting calls stay queued; the resync reports calls that ended
meanwhile: a conversation among them ends at the moment the link was lost
(its talk time is not stretched to the resync) with the outcome "pbx-lost".
So does a caller who was waiting, if the PBX lost its calls (none of those
it had at the loss is left: a crash, a restart) -- not the caller's doing,
so not counted abandoned; a waiting caller the PBX's shutdown hangs up ends
"pbx-lost" too.  If other calls outlived the outage only the link dropped,
and a waiting caller gone meanwhile hung up: an abandon.

Nailed-up agents are offered calls only while their leg sits in its bridge.
An agent without one is paused with the reason "pbx lost" (the leg vanished
with the PBX: restart, crash, link loss) or "no phone" (a nail-up failed or
is still ringing), and the leg is nailed up again by itself: after the
resync, and after every failure, with retries backed off 1 s, 2 s, 4 s ...
(capped, at most ``nail_retries`` in a row; the clock is the injected one).
Once the leg is in its bridge the agent returns to what it was before,
ready or paused with its own reason.  A leg the agent's phone hung up
("phone hung up") is not rung again until the agent or a supervisor sets
the agent ready.

After a restart of Dirigent (not of the PBX) a nailed-up leg still in its
bridge is taken over (:meth:`VoiceInbound.adopt_nailed`), and so is what
shares that bridge, since a customer there is a conversation going on: an
inbound caller whose interaction the last run left open
(:class:`CallLeftOpen`) is the agent's call again (busy, its end ends it
as usual, with its answer time from before the restart); anything else
keeps the agent paused "call in bridge" until it leaves, a campaign's
person (``dial-...``) among it too: the campaign's runner takes that call
over from the agent held so, once its reconciliation runs.  Never ready with a customer in
the bridge: the next caller would be moved into that conversation.  A caller
the last run had waiting, still on hold at the resync (in no bridge), is
queued again with its own arrival time (:meth:`VoiceInbound._requeue_waiting`):
its ``DIRIGENT_WAIT`` still runs on the PBX, and the free agent gets it at once.

A ring-mode agent's conversation (the caller Dialed her phone from
``dirigent-connect``; the two share a bridge) is taken over likewise when
the agent logs in (:meth:`VoiceInbound._adopt_ringing`): busy with it, its
hang-up ends it with the talk time across the restart.  Her auto-login waits
for the resync then (``dirigent.service``): logged in ready before it, the
next caller would ring the phone she talks on.

Time comes from an ``IReactorTime`` (the reactor, or ``task.Clock``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.logger import Logger

from center.hub import Exit, Hub, Offer
from core.errors import Unavailable
from core.events import HistoryEntry, OfferEnd, Stage
from core.telephony import (
    CALL_IN_BRIDGE,
    AgentRingFailed,
    CallBridged,
    CallEnded,
    CallFellBack,
    CallWaiting,
    CommandRefused,
    DialResult,
    Outcome,
    OutcomeUnknown,
    PbxGoingDown,
    PbxLost,
    PbxSynced,
    PbxUnavailable,
    RingFailure,
    Telephony,
    TelephonyEvent,
)
from routing.agent import Phase
from routing.model import Channel, Direction, Interaction

log = Logger(namespace="channels.voice")

#: pause reasons of a nailed-up agent without its leg (set and cleared by the ACD)
PBX_LOST = "pbx lost"
NO_PHONE = "no phone"
PHONE_HUNG_UP = "phone hung up"
#: the pause of a nailed-up agent whose bridge holds a channel nobody can name
#: (found there after a restart): not offered calls until that channel leaves
FOREIGN_CALL = CALL_IN_BRIDGE
#: the call ids a campaign's runner dials under (it takes those over itself)
CAMPAIGN_CALL = "dial-"
LEG_REASONS = frozenset((PBX_LOST, NO_PHONE))
#: the outcome of a conversation whose channels vanished with the PBX link
ENDED_PBX_LOST = "pbx-lost"
#: a leg hung up this long before the PBX announced its shutdown (or the link
#: dropped) went down with the PBX, not by the agent's hand
SHUTDOWN_WINDOW = 5.0
#: the pause a preview campaign sets; never restored after a lost leg (the
#: record on screen went back meanwhile)
PREVIEW = "preview"
#: a ring-mode agent's phone rings this much less than the offer has left, so
#: the PBX gives up (and says so) before the offer times out in Dirigent
RING_MARGIN = 1.0
#: a dialplan fallback this soon after the arrival: the hold music is missing (see
#: :meth:`VoiceInbound._fell_back`)
QUICK_FALLBACK = 1.0
#: a move the PBX refused while the caller is still up (Asterisk refuses a
#: Redirect while the last one is under way: "channel not up") is sent again
#: after this long, at most MOVE_RETRIES times, never held against the agent
MOVE_RETRY_DELAY = 0.25
MOVE_RETRIES = 4
#: a move waiting for the caller's hold to land is sent anyway after this long
#: (the landing is the caller's DirigentInbound UserEvent, which may not come)
LANDING_WAIT = 2.0
#: the pause reason of a ring-mode agent whose phone did not take the call
PAUSE_FOR_RING_FAILURE = {
    RingFailure.BUSY: "endpoint busy",
    RingFailure.UNREACHABLE: "endpoint unreachable",
    RingFailure.NO_ANSWER: "no answer",
}


class CallLeftOpen(Protocol):
    """A call the last run left open, as the report store read it back at
    start-up (``store.records.LeftOpen``): with an agent (``answered`` set,
    ``agent`` who had it) or still waiting (``answered`` None)."""

    @property
    def queue(self) -> str: ...
    @property
    def customer(self) -> str | None: ...
    @property
    def direction(self) -> Direction: ...
    @property
    def arrived(self) -> float: ...
    @property
    def answered(self) -> float | None: ...
    @property
    def agent(self) -> str | None: ...
    @property
    def history(self) -> Sequence[HistoryEntry]: ...


@dataclass
class AgentEndpoint:
    agent: str
    endpoint: str  # the agent's phone, as the PBX names it (e.g. "1001")
    mode: str = "ring"  # "ring" or "nailed"
    #: the call that is the agent's kept line (nailed mode), once dialled
    line_call: str | None = None
    #: the nailed leg is in its bridge (calls may be moved in)
    leg_up: bool = False
    #: queues to log in to once the leg is up (auto-login, login without a leg)
    queues: list[str] | None = None
    #: what the agent returns to once the leg is up: None = ready, else that pause
    resume: str | None = None
    nailing: bool = False  # an Originate for the leg is in flight
    answered: bool = False  # ... and was answered (the bridge comes next)
    tries: int = 0  # nail-ups failed in a row
    retry: IDelayedCall | None = None
    hung_up_at: float | None = None  # the leg hung up (not yet known why)


@dataclass
class _Call:
    interaction: Interaction  # its id is the caller's call id
    agent: str | None = None
    answered_at: float | None = None
    #: our Redirect back to hold is under way: the next move waits for it to land
    moving: bool = False
    #: the move to an agent that waits for the hold to land (or a retry)
    pending: Offer | None = None
    waiting_move: IDelayedCall | None = None
    refused: int = 0  # moves the PBX refused in a row


class VoiceInbound:
    """The voice channel of one PBX: its callers, its agents' phones.

    Speaks only the telephony port (:class:`core.telephony.Telephony`);
    owns in the hub the calls that arrive on its PBX and is the
    :class:`~center.hub.AgentLine` of the agents whose phones are on it.
    Link loss, resync and nail-up retries are per PBX: one PBX going down
    leaves the agents and callers of the others alone."""

    def __init__(
        self,
        telephony: Telephony,
        hub: Hub,
        endpoints: Mapping[str, AgentEndpoint],
        *,
        name: str = "",
        qualify_ids: bool = False,
        nail_retry_initial: float = 1.0,
        nail_retry_max: float = 60.0,
        nail_retries: int = 10,
        left_open: Mapping[str, CallLeftOpen] | None = None,
    ) -> None:
        self.telephony = telephony
        self.hub = hub
        #: interaction id -> a call the last run left with an agent: taken
        #: over if the resync finds it in that agent's bridge
        self.left_open = dict(left_open or {})
        #: channels nobody can name in a nailed agent's bridge -> that agent
        #: (paused FOREIGN_CALL until they are gone)
        self.foreign: dict[str, str] = {}
        self.name = name  # the PBX's name in the configuration
        self.endpoints = dict(endpoints)
        self.calls: dict[str, _Call] = {}  # the caller's call id on this PBX -> call
        #: interaction ids are "<pbx>:<call id>" with several PBXs (two Asterisks
        #: number their channels alike), the PBX's call id with one
        self.prefix = f"{name}:" if qualify_ids else ""
        self.by_nailed: dict[str, str] = {}  # the call id of a nailed agent's line -> agent
        self.nail_retry_initial = nail_retry_initial
        self.nail_retry_max = nail_retry_max
        self.nail_retries = nail_retries
        #: when the PBX link was lost (None while up): conversations that vanished
        #: meanwhile end then, not at the resync
        self.lost_at: float | None = None
        #: the calls the PBX had when the link was lost: if none of them is
        #: there at the resync, the PBX lost its calls (crash, restart)
        self._had_at_loss: frozenset[str] = frozenset()
        self._pbx_going_down = False  # Shutdown seen: legs hanging up now go with the PBX
        #: caller's interaction id -> the agent its move waits for (the link is down)
        self._held: dict[str, str] = {}
        hub.add_adapter(self)
        for agent in self.endpoints:
            hub.add_line(agent, self)
        hub.listen_offers(self._offer_ended)
        telephony.listen(self.on_event)

    def stop(self) -> None:
        for ep in self.endpoints.values():
            self._cancel_retry(ep)

    # -- agent commands (center.hub.AgentLine) --------------------------------------------
    def login(self, agent: str, queues: list[str], paused: str | None) -> bool:
        """A nailed-up agent without a leg logs in paused "no phone" and its
        leg is nailed up; it becomes ready (or ``paused``) once the leg is in
        its bridge.  One whose bridge holds a channel nobody can name logs in
        paused :data:`FOREIGN_CALL` until it has left."""
        ep = self.endpoints.get(agent)
        if ep is not None and self._has_foreign(agent):  # not ready: see _hold_for_foreign
            self.hub.line_login(agent, self.hub.clock.seconds(), queues, FOREIGN_CALL)
            ep.queues, ep.resume = list(queues), paused
            return True
        if ep is not None and ep.mode != "nailed" and self._adopt_ringing(agent, queues):
            # a conversation rung to its phone outlived a restart of Dirigent
            self._keep_pause(agent, paused)
            return True
        if ep is not None and ep.mode == "nailed" and not self.has_leg(agent):
            if not ep.nailing and self.adopt_nailed(agent, queues):
                # its leg outlived a restart of Dirigent (an agent without
                # auto_login): taken over, as at the resync, not rung again
                self._keep_pause(agent, paused)
                return True
            self.hub.line_login(agent, self.hub.clock.seconds(), queues, NO_PHONE)
            ep.queues, ep.resume = list(queues), paused
            self.nail_up(agent)
            return True
        return False

    def _keep_pause(self, agent: str, paused: str | None) -> None:
        a = self.hub.agent(agent)
        if paused is not None and a is not None and a.pause_reason is None:
            self.hub.line_pause(agent, self.hub.clock.seconds(), paused)

    def ready(self, agent: str) -> bool:
        """For a nailed-up agent whose leg is down this does not open routing
        (a call moved to an agent without a leg finds an empty conference):
        the wish is kept, the agent stays paused "pbx lost" / "no phone", a
        nail-up is started if none is under way, and the agent is ready by
        itself once the leg is in its bridge."""
        ep = self.endpoints.get(agent)
        a = self.hub.agent(agent)
        if ep is not None and self._has_foreign(agent):  # ready once they have left
            ep.resume = None
            return True
        if (
            ep is not None
            and ep.mode == "nailed"
            and a is not None
            and a.logged_in
            and not self.has_leg(agent)
        ):
            ep.resume = None
            if a.pause_reason not in LEG_REASONS:
                self.hub.line_pause(agent, self.hub.clock.seconds(), NO_PHONE)
            if not ep.nailing and (ep.retry is None or not ep.retry.active()):
                ep.tries = 0
                self.nail_up(agent)
            return True
        return False

    def pause(self, agent: str, reason: str) -> bool:
        """While a nailed-up agent's leg is down the pause is kept for when
        the leg is back (the agent shows the leg's reason until then)."""
        ep = self.endpoints.get(agent)
        a = self.hub.agent(agent)
        if ep is not None and a is not None and a.pause_reason == FOREIGN_CALL:
            ep.resume = reason  # shown once the channels in its bridge have left
            return True
        if (
            ep is not None
            and a is not None
            and a.logged_in
            and a.pause_reason in LEG_REASONS
            and not self.has_leg(agent)
        ):
            ep.resume = reason
            return True
        return False

    def logged_out(self, agent: str) -> None:
        ep = self.endpoints.get(agent)
        if ep is not None:  # logged out on purpose: not logged in again by a re-nail
            self._cancel_retry(ep)
            ep.queues, ep.resume = None, None
            uid = ep.line_call
            if uid is not None and self.has_leg(agent) and not self._has_foreign(agent):
                # the shift is over: the phone is hung up, not left "in a call"
                # in an empty conference (the next login rings it again)
                d = self.telephony.hang_up(uid)
                d.addErrback(
                    lambda f: log.warn(
                        "agent {a}: its line not hung up at the logout: {e}",
                        a=agent,
                        e=f.getErrorMessage(),
                    )
                )

    # -- the interactions it owns (center.hub.ChannelAdapter) ------------------------------
    def waiting_inbound(self) -> Iterable[str]:
        for call in self.calls.values():
            if call.answered_at is None and self.hub.is_waiting(call.interaction.id):
                yield call.interaction.queue

    def carry_out(self, offer: Offer) -> None:
        uid = offer.interaction.removeprefix(self.prefix)
        call = self.calls.get(uid)
        if call is None:
            return
        call.agent = offer.agent
        if call.moving and self.telephony.connected:
            # our Redirect back to hold is under way: Asterisk would refuse this
            # one ("channel not up"); it is sent once the caller has landed
            self._wait_for_landing(call, offer)
            return
        ep = self.endpoints.get(offer.agent)
        if ep is None:  # not an agent of this PBX: the caller goes to the next one now
            call.agent = None
            self.hub.route(self._not_here(offer))
            return
        if not self.telephony.connected:  # the PBX cannot be told now: after the resync
            self._hold(offer)
            return
        if ep.mode == "nailed":
            if not self.has_leg(offer.agent):  # an empty conference is no agent
                call.agent = None
                self.leg_missing(offer.agent)
                now = self.hub.clock.seconds()
                self.hub.route(self.hub.decline_offer(offer.agent, offer.interaction, now))
                return
            d = self.telephony.connect_to_agent(uid, offer.agent)
        else:
            # the phone rings a little less than the offer has left: the PBX
            # gives up first (DirigentConnectFailed), never a phone ringing on
            # for an offer Dirigent has already given up
            left = offer.deadline - self.hub.clock.seconds() - RING_MARGIN
            ring_for = max(1.0, left) if left < float("inf") else None
            d = self.telephony.connect_to_agent(uid, offer.agent, ep.endpoint, ring_for)
        d.addCallbacks(self._moved, self._move_failed, (uid,), {}, (offer,))

    def _moved(self, _: object, uid: str) -> None:
        call = self.calls.get(uid)
        if call is not None:
            call.refused = 0

    def _wait_for_landing(self, call: _Call, offer: Offer) -> None:
        call.pending = offer
        if call.waiting_move is None or not call.waiting_move.active():
            call.waiting_move = self.hub.clock.callLater(
                LANDING_WAIT, self._send_pending, call.interaction.id, "no landing seen"
            )

    def _send_pending(self, iid: str, why: str) -> None:
        """Send the move that waited for the caller's hold to land (or for a
        retry), if it is still that agent's offer."""
        call = self.calls.get(iid.removeprefix(self.prefix))
        if call is None or call.interaction.id != iid:
            return
        if call.waiting_move is not None and call.waiting_move.active():
            call.waiting_move.cancel()
        offer, call.pending, call.waiting_move, call.moving = call.pending, None, None, False
        if offer is None or self.hub.offered_to(iid) != offer.agent:
            return
        log.debug("caller {i}: move to {a} sent ({w})", i=iid, a=offer.agent, w=why)
        self.carry_out(offer)

    def _to_hold(self, call: _Call, queue: str) -> None:
        """Put the caller back on hold in ``queue`` (a Redirect to
        dirigent-inbound); until it has landed a move to an agent waits."""
        call.moving = True
        uid = call.interaction.id.removeprefix(self.prefix)
        iid = call.interaction.id

        def failed(failure: Any) -> None:
            self._hold_failed(failure, iid)
            self._send_pending(iid, "hold failed")  # the waiting move may go now

        self.telephony.transfer_to_queue(uid, queue).addErrback(failed)

    def _landed(self, uid: str) -> None:
        """The caller announced itself in dirigent-inbound again: the hold
        we sent has landed, the move waiting for it may go."""
        call = self.calls[uid]
        if call.moving or call.pending is not None:
            call.moving = False
            self._send_pending(call.interaction.id, "landed")

    def _offer_ended(self, agent: str, interaction: Interaction, end: OfferEnd, now: float) -> None:
        """A ring-mode offer timed out in Dirigent while the PBX may still
        ring the phone (a dialplan whose Dial outlasts the offer): the caller
        is taken off that phone -- to the next agent if the router has one
        (its Redirect ends the Dial), else back on hold.  A late answer can
        then never put the caller through to an agent Dirigent paused "no
        answer" while it shows the caller waiting."""
        if end is not OfferEnd.TIMED_OUT:
            return
        call = self.calls.get(interaction.id.removeprefix(self.prefix))
        ep = self.endpoints.get(agent)
        if (
            call is None
            or call.interaction.id != interaction.id
            or call.agent != agent  # a failed ring (the PBX's own NOANSWER) clears it first
            or call.answered_at is not None
            or ep is None
            or ep.mode == "nailed"
        ):
            return
        call.agent = None
        if call.pending is not None and call.pending.agent == agent:
            call.pending = None  # never sent: nothing rings
            return
        log.info(
            "caller {i}: offer to {a} timed out; the phone {e} stops ringing",
            i=interaction.id,
            a=agent,
            e=ep.endpoint,
        )
        self.hub.clock.callLater(0, self._off_the_phone, interaction.id)

    def _off_the_phone(self, iid: str) -> None:
        call = self.calls.get(iid.removeprefix(self.prefix))
        if call is None or call.interaction.id != iid or call.answered_at is not None:
            return
        if self.hub.is_waiting(iid) and self.telephony.connected:
            self._to_hold(call, call.interaction.queue)  # nobody else took it: on hold

    def _hold(self, offer: Offer) -> None:
        """A move the PBX cannot carry out now (its link is down, or went down
        under the command): the agent is kept for the caller, the offer does
        not time out meanwhile (a "no answer" pause would blame the agent for
        the PBX; a decline would keep the caller from that agent for good),
        and the move is sent after the resync (:meth:`_send_held`)."""
        if offer.interaction not in self._held:
            log.info(
                "caller {i}: the move to agent {a} waits for the PBX link",
                i=offer.interaction,
                a=offer.agent,
            )
        self._held[offer.interaction] = offer.agent
        self.hub.hold_offer(offer.interaction)

    def _send_held(self, now: float) -> None:
        """After the resync: the moves held while the link was down are sent,
        unless the resync settled them (the caller gone, or already with the
        agent: its bridge was in the PBX's snapshot), or the agent lost its
        phone meanwhile (the caller went on to the next agent)."""
        held, self._held = self._held, {}
        for iid, agent in sorted(held.items()):
            if self.hub.offered_to(iid) != agent or iid.removeprefix(self.prefix) not in self.calls:
                continue
            self.hub.renew_offer(iid, now)
            self.carry_out(Offer(agent, iid, Channel.VOICE, now + self.hub.offer_timeout))

    def _not_here(self, offer: Offer) -> list[Offer]:
        """Decline ``offer``, made to an agent with no phone on this PBX, and
        the offers of our callers the router makes that agent next; return
        the others (the callers offered to the next agents), to be routed at
        once.  Declined here in a loop, not through the hub again: with a
        long queue that recursion would run out of stack."""
        now = self.hub.clock.seconds()
        todo: list[Offer] = [offer]
        others: list[Offer] = []
        while todo:
            for new in self.hub.decline_offer(offer.agent, todo.pop().interaction, now):
                call = self.calls.get(new.interaction.removeprefix(self.prefix))
                ours = call is not None and call.interaction.id == new.interaction
                (todo if ours and new.agent == offer.agent else others).append(new)
        return others

    def on_exit(self, ex: Exit) -> None:
        uid = ex.interaction.removeprefix(self.prefix)
        call = self.calls.get(uid)
        if call is None:
            return
        # the caller goes to the PBX's own fallback (queue / voicemail): not
        # ours from then on, written "fallback" as when the dialplan's own wait
        # ends (its priority skips the DirigentFallback UserEvent: we already
        # know), not "abandoned" at the end of the fallback's conversation
        d = self.telephony.to_fallback(uid, call.interaction.queue)
        pbx = self.telephony.name
        d.addCallbacks(
            lambda _: self._fallback(CallFellBack(pbx, uid), self.hub.clock.seconds()),
            lambda f: log.warn(
                "caller {uid} not sent to the fallback of {q}: {e}",
                uid=uid,
                q=call.interaction.queue,
                e=f.getErrorMessage(),
            ),
        )

    def transfer(
        self, agent: str, interaction: str, queue: str | None, to_agent: str | None
    ) -> list[Offer]:
        """The caller is first put back on hold (music on hold of the target
        queue), then offered like a new arrival."""
        now = self.hub.clock.seconds()
        uid = interaction.removeprefix(self.prefix)
        call = self.calls[uid]
        if not self.telephony.connected:  # the caller would stay with the agent on the PBX
            raise Unavailable("pbx", "the PBX link is down: the call cannot be moved now")
        moving = self.hub.handled(interaction)
        offers = self.hub.transfer_owned(agent, interaction, now, queue=queue, to_agent=to_agent)
        # on hold in the queue the router has it wait in (for an agent:
        # transfer_queue in routing/router.py), not a second choice of its own; the
        # router may have offered it already, so it is read from the moved item
        target_queue = moving.queue if moving is not None else call.interaction.queue
        call.agent, call.answered_at = None, None
        call.interaction.arrived = now
        # hold first: the caller leaves the agent and hears music until the next
        # offer, whose move waits for the hold to land (Asterisk refuses a
        # Redirect while the last one is under way: "channel not up")
        self._to_hold(call, target_queue)
        return offers

    def adopt_nailed(self, agent: str, queues: list[str]) -> bool:
        """After a restart of Dirigent (not of the PBX), the agent's nailed-up
        leg is still in its bridge: take it over and log the agent in,
        instead of ringing a phone that is already on the line.  What else
        is in that bridge decides how: nobody: ready; an inbound caller the
        last run left with this agent: busy with it (:meth:`_take_over`);
        anything else: paused :data:`FOREIGN_CALL` until it leaves
        (:meth:`_hold_for_foreign`) -- a campaign's person alone there is
        taken over by its runner from the agent held so."""
        prefix = f"agent-{agent}-"
        for live in self.telephony.live_calls():
            uid = live.id
            if uid.startswith(prefix) and live.bridge is not None:
                ep = self.endpoints[agent]
                ep.line_call, ep.leg_up, ep.queues = uid, True, list(queues)
                self.by_nailed[uid] = agent
                log.info("agent {a}: nailed-up leg {uid} taken over", a=agent, uid=uid)
                others = sorted(self.telephony.bridged_with(uid))
                if not others:
                    self.hub.login(agent, queues)
                elif not (
                    len(others) == 1
                    and not others[0].startswith(CAMPAIGN_CALL)
                    and self._take_over(agent, queues, others[0])
                ):
                    # a campaign's person too: its runner takes it over from the
                    # held agent (ready, an inbound caller could join them first)
                    self._hold_for_foreign(agent, queues, others)
                return True
        return False

    def _take_over(self, agent: str, queues: list[str], uid: str) -> bool:
        """The caller ``uid`` in ``agent``'s bridge after a restart becomes
        that agent's call again, as if just connected: the agent is logged in
        busy with it (never ready while the caller is there), its hang-up
        ends it and the agent goes to wrap-up, and its report row is reopened
        with the answer time it had (the talk time runs across the restart).
        The call is put in the queue for this agent alone before the agent
        logs in, and goes ahead of anything waiting (``connect_by``), so the
        login offers it and nothing else on voice.  False (nothing changed)
        when it is not a call of ours this agent had."""
        iid = self.prefix + uid
        left = self.left_open.get(iid)
        if left is None or not self.hub.has_queue(left.queue) or left.queue not in queues:
            return False
        answered = left.answered
        if answered is None:  # it was waiting: queued again at the resync instead
            return False
        now = self.hub.clock.seconds()
        interaction = _interaction_of(iid, left, agent=agent, connect_by=now)
        self.hub.queue_owned(interaction, now)  # the agent is not in yet: it waits for it
        offers = self.hub.line_login(agent, now, queues)
        if not any(o.interaction == iid for o in offers):
            self.hub.line_pause(
                agent, now, FOREIGN_CALL
            )  # first: not offered again what it gives back
            given_back: list[Offer] = []
            for o in offers:
                given_back += self.hub.withdraw_offer(agent, o.interaction, now, FOREIGN_CALL)
            self.hub.abandon(iid, now)
            self.hub.route(given_back)
            log.error("agent {a}: caller {i} in its bridge could not be taken over", a=agent, i=iid)
            return False
        del self.left_open[iid]
        self.hub.accept_offer(agent, iid, now)
        interaction.connect_by = None  # a transfer queues it as the caller it is
        interaction.history = list(left.history)  # not a new queueing and answer
        self.calls[uid] = _Call(interaction, agent, answered)
        self.hub.own(iid, self)
        self.hub.publish_interaction(Stage.ANSWERED, interaction, at=answered, agent=agent)
        log.info("agent {a}: call {i} in its bridge taken over after a restart", a=agent, i=iid)
        self.hub.route([o for o in offers if o.interaction != iid])  # chat, e-mail ...
        return True

    def left_with(self, agent: str) -> bool:
        """Did the last run leave a conversation with ``agent`` that the PBX
        may still have?  Its service logs a ring-mode agent in only after the
        resync then (:meth:`_adopt_ringing`): logged in ready before it, the
        agent would be offered the next caller while she talks."""
        return any(
            left.agent == agent and left.answered is not None and iid.startswith(self.prefix)
            for iid, left in self.left_open.items()
        )

    def _adopt_ringing(self, agent: str, queues: list[str]) -> bool:
        """After a restart of Dirigent, a ring-mode agent's conversation goes
        on at the PBX: the caller the last run left with this agent is still
        bridged with one other channel, which is her phone (the shipped
        dialplan Dials it from the caller's channel, and the two share a
        bridge).  The agent is logged in busy with it (:meth:`_take_over`),
        not ready while she talks.  False when there is none (or the PBX has
        not been resynced yet: nothing is bridged in an empty mirror)."""
        a = self.hub.agent(agent)
        if a is None or a.logged_in:
            return False
        for iid, left in sorted(self.left_open.items()):
            if left.agent != agent or left.answered is None or not iid.startswith(self.prefix):
                continue
            uid = iid.removeprefix(self.prefix)
            others = self.telephony.bridged_with(uid)
            if len(others) != 1 or uid in self.calls:
                continue
            (other,) = others
            if other in self.calls or other.startswith((CAMPAIGN_CALL, "agent-")):
                continue  # a customer or a nailed-up leg: not her phone
            return self._take_over(agent, queues, uid)
        return False

    def _requeue_waiting(self, now: float) -> None:
        """After a restart of Dirigent: the callers the last run had waiting
        and the PBX still has, in no bridge (on hold, their ``DIRIGENT_WAIT``
        still running), are queued again with their own arrival time (their
        place in the queue and their wait are the ones they had) and their
        report rows reopened, so a free agent gets them at once instead of
        the dialplan's fallback a minute later.  A caller the fallback took
        meanwhile (in its Queue() or VoiceMail(), put through to a member
        or not) is recorded as the fallback's and left there.  A campaign's
        person is its runner's business; a caller whose call the PBX no longer has keeps
        the row start-up closed."""
        for iid, left in sorted(self.left_open.items(), key=lambda item: item[1].arrived):
            if left.answered is not None or not iid.startswith(self.prefix):
                continue
            uid = iid.removeprefix(self.prefix)
            live = self.telephony.live_call(uid)
            if (
                live is None
                # in a bridge: not waiting -- unless the fallback's Queue()
                # put them through meanwhile (theirs: recorded so, left there)
                or (self.telephony.bridged_with(uid) and not live.in_fallback)
                or uid in self.calls
                or uid.startswith(CAMPAIGN_CALL)
                or not self.hub.has_queue(left.queue)
            ):
                continue
            del self.left_open[iid]
            interaction = _interaction_of(iid, left, history=list(left.history))
            self.calls[uid] = _Call(interaction)
            self.hub.own(iid, self)
            self.hub.publish_interaction(Stage.QUEUED, interaction)  # its row reopened
            if self.hub.metrics:  # this process's counters: answered never above offered
                self.hub.metrics.offered.labels(left.queue, "voice").inc()
            if live.in_fallback:  # its wait ran out while we were down: the PBX's now
                self._fallback(CallFellBack(self.telephony.name, uid), now)
                continue
            offers = self.hub.queue_owned(interaction, now)
            # queued once, on its arrival (the row, written before the router
            # queued it, may not have that entry yet)
            interaction.history = list(left.history) or [
                HistoryEntry.queued(left.queue, left.arrived)
            ]
            log.info(
                "caller {i} still waiting after a restart: queued again ({w:.0f} s waited)",
                i=iid,
                w=now - left.arrived,
            )
            self.hub.route(offers)

    def _fallen_back_meanwhile(self, now: float) -> None:
        """After a resync: callers whose wait ran out while the link was
        down are in the dialplan's fallback now (its DirigentFallback event
        was not heard): theirs, not routed by us any more."""
        for uid in list(self.calls):
            live = self.telephony.live_call(uid)
            if live is not None and live.in_fallback:
                self._fallback(CallFellBack(self.telephony.name, uid), now)

    def _forget_gone(self) -> None:
        """After a resync: calls the last run left open that the PBX no
        longer has are not taken over by anyone (their rows keep start-up's
        close)."""
        for iid in list(self.left_open):
            if iid.startswith(self.prefix) and (
                self.telephony.live_call(iid.removeprefix(self.prefix)) is None
            ):
                del self.left_open[iid]

    def _hold_for_foreign(self, agent: str, queues: list[str], channels: list[str]) -> None:
        """Channels nobody can name share ``agent``'s bridge (a caller whose
        report row is gone, someone else's call): the agent is logged in
        paused :data:`FOREIGN_CALL` and offered nothing until they have left
        (:meth:`_foreign_gone`); then it is ready, or paused as it asked
        meanwhile.  A campaign's person alone there is taken over by its
        runner from the agent held so (the runner checks that nobody else
        shares the bridge); one with another customer is hung up by the
        runner, which ends what two customers would otherwise share."""
        for uid in channels:
            self.foreign[uid] = agent
        self.endpoints[agent].resume = None
        log.warn(
            "agent {a}: {c} in its bridge after a restart, not a call of its own: paused"
            " '{r}' until they leave",
            a=agent,
            c=", ".join(channels),
            r=FOREIGN_CALL,
        )
        now = self.hub.clock.seconds()
        a = self.hub.known_agent(agent)
        if a.logged_in:  # a take-over that failed half-way
            self.hub.line_pause(agent, now, FOREIGN_CALL)
        else:
            self.hub.route(self.hub.line_login(agent, now, queues, FOREIGN_CALL))

    def _has_foreign(self, agent: str) -> bool:
        return agent in self.foreign.values()

    def _foreign_moved(self, uid: str, now: float) -> None:
        holder = self.foreign[uid]
        leg = self.endpoints[holder].line_call
        if leg is None or uid not in self.telephony.bridged_with(leg):
            self._foreign_gone(uid, now)

    def _foreign_gone(self, uid: str, now: float) -> None:
        """A channel that held ``agent`` paused left its bridge (hung up, or
        bridged elsewhere): once none is left, the agent is ready (or paused
        with what it asked for meanwhile)."""
        agent = self.foreign.pop(uid)
        if self._has_foreign(agent):
            return
        ep = self.endpoints[agent]
        a = self.hub.agent(agent)
        if a is None or not a.logged_in or a.pause_reason != FOREIGN_CALL:
            return
        resume, ep.resume = ep.resume, None
        log.info("agent {a}: its bridge is its own again", a=agent)
        if resume is None:
            self.hub.route(self.hub.line_ready(agent, now))
        else:
            self.hub.line_pause(agent, now, resume)

    def has_leg(self, agent: str) -> bool:
        """May calls be moved to this agent?  Ring-mode agents: always (their
        phone is rung per call).  Nailed-up agents: only while their leg is in
        its bridge, as the PBX mirror shows it."""
        ep = self.endpoints.get(agent)
        if ep is None or ep.mode != "nailed":
            return True
        if not ep.leg_up or ep.line_call is None:
            return False
        live = self.telephony.live_call(ep.line_call)
        return live is not None and live.bridge is not None

    def nail_up(self, agent: str, queues: list[str] | None = None) -> Deferred[None]:
        """Bring a nailed-up agent's phone into its own bridge (dirigent-agent).

        With ``queues``, the agent is logged in once the leg is in its bridge
        (not before: a caller moved in earlier would find no bridge).  A
        failure (busy, no answer, originate refused) is logged, counted
        (``dirigent_agent_nailup_failures_total``) and retried, backed off;
        the agent shows "no phone" meanwhile.  Calling this while a nail-up
        is under way, or with the leg up, changes nothing (one leg per agent).
        The Deferred fires (with None) once the Originate is answered or has
        failed; it never fails."""
        ep = self.endpoints[agent]
        if queues is not None:
            ep.queues = list(queues)
        if ep.nailing or self.has_leg(agent):
            return succeed(None)
        self._cancel_retry(ep)
        return self._nail(agent)

    def _nail(self, agent: str) -> Deferred[None]:
        ep = self.endpoints[agent]
        ep.retry = None
        if not self.telephony.connected:
            return succeed(None)  # the resync after the reconnect nails it up
        uid = f"agent-{agent}-{int(self.hub.clock.seconds() * 1000)}"
        if uid == ep.line_call or uid in self.by_nailed:
            uid = f"{uid}{ep.tries + 1}"  # same millisecond: still agent-<id>-<digits>
        if ep.line_call is not None:
            self.by_nailed.pop(ep.line_call, None)
        ep.line_call, ep.leg_up, ep.nailing, ep.answered = uid, False, True, False
        self.by_nailed[uid] = agent
        d = self.telephony.keep_line(agent, ep.endpoint, call=uid, timeout=30.0)
        done: Deferred[None] = d.addCallbacks(
            self._nail_result, self._nail_error, (agent, uid), {}, (agent, uid)
        )
        return done  # fires with None: both callbacks return it

    def _nail_result(self, result: DialResult, agent: str, uid: str) -> None:
        ep = self.endpoints[agent]
        if ep.line_call != uid or not ep.nailing:
            return
        if result.outcome is Outcome.ANSWERED:
            ep.answered = True  # the bridge follows (or a hang-up: see on_event)
            return
        cause = f", cause {result.cause}" if result.cause is not None else ""
        self._nail_failed(agent, uid, result.outcome.value, f"{result.outcome.value}{cause}")

    def _nail_error(self, failure: Any, agent: str, uid: str) -> None:
        ep = self.endpoints[agent]
        if ep.line_call != uid or not ep.nailing:
            return
        if not self.telephony.connected:
            # the link dropped under the Originate: the resync shows whether the
            # leg exists, and nails it up if not
            ep.nailing = False
            log.info("agent {a}: nail-up interrupted by the PBX link loss", a=agent)
            return
        unknown = failure.check(OutcomeUnknown) is not None
        self._nail_failed(
            agent, uid, "unknown" if unknown else "originate-failed", failure.getErrorMessage()
        )

    def _nail_failed(self, agent: str, uid: str, reason: str, detail: str) -> None:
        ep = self.endpoints[agent]
        ep.nailing, ep.answered, ep.leg_up = False, False, False
        self.by_nailed.pop(uid, None)
        ep.tries += 1
        if self.hub.metrics:
            self.hub.metrics.nailup_failures.labels(reason).inc()
        delay = self._retry_delay(ep)
        if delay is None:
            log.error(
                "agent {a}: nail-up of phone {e} failed ({d}); gave up after {n} tries in a row"
                " (the agent stays paused '{r}' until set ready or the next resync)",
                a=agent,
                e=ep.endpoint,
                d=detail,
                n=ep.tries,
                r=NO_PHONE,
            )
        else:
            log.warn(
                "agent {a}: nail-up of phone {e} failed ({d}); try {n} again in {s:g} s",
                a=agent,
                e=ep.endpoint,
                d=detail,
                n=ep.tries + 1,
                s=delay,
            )
        self._leg_down(agent, NO_PHONE)
        if delay is not None:
            self._schedule_nail(agent, delay)

    def _retry_delay(self, ep: AgentEndpoint) -> float | None:
        """1 s, 2 s, 4 s ... capped; None once ``nail_retries`` failed in a row."""
        if ep.tries >= self.nail_retries:
            return None
        return float(min(self.nail_retry_max, self.nail_retry_initial * 2 ** max(0, ep.tries - 1)))

    def _schedule_nail(self, agent: str, delay: float) -> None:
        ep = self.endpoints[agent]
        if ep.nailing or (ep.retry is not None and ep.retry.active()):
            return
        ep.retry = self.hub.clock.callLater(delay, self._nail, agent)

    @staticmethod
    def _cancel_retry(ep: AgentEndpoint) -> None:
        if ep.retry is not None and ep.retry.active():
            ep.retry.cancel()
        ep.retry = None

    def _leg_down(self, agent: str, reason: str) -> None:
        """The agent has no leg: it shows ``reason`` (and keeps what to return to)."""
        ep = self.endpoints[agent]
        a = self.hub.agent(agent)
        if a is None:
            return
        now = self.hub.clock.seconds()
        if not a.logged_in:
            if ep.queues is not None:  # meant to be logged in: visible, not logged out
                self.hub.line_login(agent, now, ep.queues, reason)
            return
        if a.pause_reason not in LEG_REASONS and a.pause_reason != PHONE_HUNG_UP:
            ep.resume = _resume_of(ep, a.pause_reason)
        if a.pause_reason != reason:
            self.hub.line_pause(agent, now, reason)

    def _leg_up(self, agent: str) -> None:
        """The leg is in its bridge: log in, or back to ready / the agent's own pause."""
        ep = self.endpoints[agent]
        self._cancel_retry(ep)
        ep.leg_up, ep.nailing, ep.answered, ep.tries, ep.hung_up_at = True, False, False, 0, None
        a = self.hub.agent(agent)
        if a is None:
            return
        resume, ep.resume = ep.resume, None
        now = self.hub.clock.seconds()
        if not a.logged_in:
            if ep.queues is not None:
                self.hub.route(self.hub.line_login(agent, now, ep.queues, resume))
            return
        if a.pause_reason in LEG_REASONS:
            log.info("agent {a}: phone leg up again", a=agent)
            if resume is None:
                self.hub.route(self.hub.line_ready(agent, now))
            else:
                self.hub.line_pause(agent, now, resume)

    def leg_missing(self, agent: str) -> None:
        """Someone was about to move a call to ``agent`` whose leg is gone
        (the campaign runners ask :meth:`has_leg` first): pause the agent
        "no phone" and nail the leg up again."""
        log.warn("agent {a}: no phone leg in its bridge; not offered calls until it is", a=agent)
        self._leg_down(agent, NO_PHONE)
        self._schedule_nail(agent, 0)

    def _renail_all(self) -> None:
        """After a resync: every logged-in nailed agent without its leg (lost
        with the PBX, or never up) gets a new one, the first try after
        ``nail_retry_initial`` (Asterisk takes logins before it has booted)."""
        for agent, ep in self.endpoints.items():
            a = self.hub.agent(agent)
            if ep.mode != "nailed" or a is None or not a.logged_in or ep.nailing:
                continue
            if a.pause_reason not in LEG_REASONS or self.has_leg(agent):
                continue
            self._cancel_retry(ep)
            ep.tries = 0
            self._schedule_nail(agent, self.nail_retry_initial)

    def _with_the_pbx(self, now: float) -> None:
        """The PBX is going (Shutdown) or gone (link lost): legs that hung up
        just before went with it, not by the agent's hand."""
        for agent, ep in self.endpoints.items():
            if ep.hung_up_at is None:
                continue
            recent, ep.hung_up_at = now - ep.hung_up_at <= SHUTDOWN_WINDOW, None
            a = self.hub.agent(agent)
            if recent and a is not None and a.logged_in and a.pause_reason == PHONE_HUNG_UP:
                self.hub.line_pause(agent, now, PBX_LOST)

    # -- events ---------------------------------------------------------------------------
    def on_event(self, event: TelephonyEvent) -> None:
        now = self.hub.clock.seconds()
        if isinstance(event, CallEnded) and event.call in self.foreign:
            self._foreign_gone(event.call, now)
        elif isinstance(event, CallBridged) and event.call in self.foreign:
            self._foreign_moved(event.call, now)
        match event:
            case CallWaiting():
                self._arrived(event, now)
            case AgentRingFailed():
                self._connect_failed(event, now)
            case CallFellBack():
                self._fell_back(event, now)
            case CallBridged(call=uid) if uid in self.calls:
                self._connected(uid, now)
            case CallBridged(call=uid) if uid in self.by_nailed:
                agent = self.by_nailed[uid]
                if self.endpoints[agent].line_call == uid:
                    self._leg_up(agent)
            case CallEnded(call=uid) if uid in self.calls:
                self._caller_gone(uid, now, event.vanished, event.cut_by_pbx)
            case CallEnded(call=uid) if uid in self.by_nailed:
                # with the PBX: vanished during a link loss, or cut by a shutdown/restart
                with_pbx = event.vanished or event.cut_by_pbx
                self._leg_gone(self.by_nailed.pop(uid), uid, now, with_pbx)
            case PbxGoingDown():
                self._pbx_going_down = True
                self._with_the_pbx(now)
            case PbxSynced():
                self.lost_at, self._pbx_going_down = None, False
                self._had_at_loss = frozenset()
                self._forget_gone()
                self._fallen_back_meanwhile(now)
                self._requeue_waiting(now)
                self._renail_all()
                self._send_held(now)
                self.hub.route(self.hub.route_all(now))
            case PbxLost():
                self.lost_at = now
                self._had_at_loss = frozenset(c.id for c in self.telephony.live_calls())
                self._with_the_pbx(now)
                for ep in self.endpoints.values():
                    self._cancel_retry(ep)  # the resync decides what to nail up
                if not self.hub.stopping:
                    log.warn(
                        "PBX link lost: {n} calls stay queued until resync",
                        n=self.hub.calls_waiting(),
                    )
            case _:
                pass

    def _leg_gone(self, agent: str, uid: str, now: float, with_pbx: bool) -> None:
        ep = self.endpoints[agent]
        if ep.line_call != uid:
            return  # an older leg of this agent
        was_up, ep.leg_up = ep.leg_up, False
        for other in [u for u, holder in self.foreign.items() if holder == agent]:
            del self.foreign[other]  # that bridge is not the agent's any more
        if not was_up:
            if ep.nailing and ep.answered:  # answered, then hung up before the bridge
                self._nail_failed(agent, uid, "hung-up", "hung up before its bridge")
            elif ep.nailing and with_pbx:
                ep.nailing = False  # went with the PBX: the resync nails it up
            return  # still ringing: the Originate's result says how it ended
        with_pbx = with_pbx or self._pbx_going_down
        self._agent_lost(agent, now, PBX_LOST if with_pbx else PHONE_HUNG_UP)
        if not with_pbx:
            ep.hung_up_at = now  # unless the PBX turns out to be going down

    def _arrived(self, event: CallWaiting, now: float) -> None:
        uid = event.call
        queue = event.queue or "default"
        if uid in self.calls:
            self._landed(uid)  # back in dirigent-inbound: our hold has landed
            return
        if not self.hub.has_queue(queue):
            # no agent can take it: the fallback now, not after a minute of music
            log.warn(
                "inbound call {uid} for unknown queue {q}: sent to the dialplan fallback"
                " (check the DID's Goto(dirigent-inbound,<queue>,1))",
                uid=uid,
                q=queue,
            )
            if self.hub.metrics:
                self.hub.metrics.fallback.labels(queue, "voice").inc()
            d = self.telephony.to_fallback(uid, queue)
            d.addErrback(lambda f: log.failure("fallback of call {uid} failed", f, uid=uid))
            return
        home = self.hub.queue_pbx.get(queue)
        if home is not None and self.name and home != self.name:
            # no agent of this PBX may take it (the hub keeps each agent to its
            # PBX's queues): a minute of music for nothing, then the fallback
            log.warn(
                "inbound call {uid} on PBX {p} for queue {q}, which is on PBX {h}: no agent"
                " here can take it; sent to the dialplan fallback (check the DID's routing)",
                uid=uid,
                p=self.name,
                q=queue,
                h=home,
            )
            if self.hub.metrics:
                self.hub.metrics.fallback.labels(queue, "voice").inc()
            d = self.telephony.to_fallback(uid, queue)
            d.addErrback(lambda f: log.failure("fallback of call {uid} failed", f, uid=uid))
            return
        handover = self.hub.take_handover(event.pbx, uid)
        if handover is None:
            interaction = Interaction(
                self.prefix + uid, Channel.VOICE, queue, now, customer=event.caller
            )
        else:  # a person a campaign reached, transferred here by an agent
            interaction = Interaction(
                self.prefix + uid,
                Channel.VOICE,
                queue,
                now,
                direction=Direction.OUTBOUND,
                customer=handover.customer,
                attributes=dict(handover.attributes),
                agent=handover.to_agent,
                history=list(handover.history),
                campaign=handover.campaign,
            )
            if handover.attempt is not None:
                # the record's result is given on the campaign's attempt: the
                # right to give it follows the typed field; the pop shows it as
                # attributes.attempt (a list column of that name does not hide it)
                interaction.handed_over = handover.attempt
                interaction.attributes["attempt"] = handover.attempt
        self.calls[uid] = _Call(interaction)
        self.hub.enqueue(interaction, owner=self)

    def _move_failed(self, failure: Any, offer: Offer) -> None:
        log.warn(
            "connecting {i} to {a} failed: {e}",
            i=offer.interaction,
            a=offer.agent,
            e=failure.getErrorMessage(),
        )
        now = self.hub.clock.seconds()
        # still this agent's offer (not given back meanwhile, nor offered to another)
        if self.hub.offered_to(offer.interaction) != offer.agent:
            return
        if (
            failure.check(PbxUnavailable)
            or not self.telephony.connected
            or self.lost_at is not None
        ):
            self._hold(offer)  # went with the link: sent again after the resync
            return
        call = self.calls.get(offer.interaction.removeprefix(self.prefix))
        if call is None or call.interaction.id != offer.interaction:
            self.hub.route(self.hub.decline_offer(offer.agent, offer.interaction, now))
            return
        if (
            failure.check(CommandRefused)
            and self.telephony.live_call(call.interaction.id.removeprefix(self.prefix)) is not None
        ):
            # the caller is still up: refused while it was on its way somewhere
            # (Asterisk: a Redirect under way, "channel not up"); not the agent's doing
            call.refused += 1
            if call.refused <= MOVE_RETRIES:
                call.pending = offer
                call.waiting_move = self.hub.clock.callLater(
                    MOVE_RETRY_DELAY * call.refused,
                    self._send_pending,
                    offer.interaction,
                    f"try {call.refused + 1}",
                )
                return
            # refused again and again: the caller goes to the next agent, this
            # one stays ready (not paused, its pop ends "withdrawn")
            log.error(
                "caller {i}: the PBX refused to move it to {a} {n} times; offered to the next agent",
                i=offer.interaction,
                a=offer.agent,
                n=call.refused,
            )
            call.refused, call.agent = 0, None
            call.interaction.declined_by.add(offer.agent)  # not this caller again
            offers = self.hub.withdraw_offer(offer.agent, offer.interaction, now, "move refused")
            self.hub.route(offers + self.hub.route_agent(offer.agent, now))
            return
        call.agent = None
        self.hub.route(self.hub.decline_offer(offer.agent, offer.interaction, now))

    def _connected(self, uid: str, now: float) -> None:
        call = self.calls[uid]
        iid = call.interaction.id
        if (
            call.answered_at is not None
            or call.agent is None
            or self.hub.offered_to(iid) != call.agent
        ):
            return
        ep = self.endpoints.get(call.agent)
        if (
            ep is not None
            and ep.mode == "nailed"
            and ep.line_call not in self.telephony.bridged_with(uid)
        ):
            # a bridge without the agent's leg (an earlier move landing in the
            # empty ConfBridge of an agent whose phone went away): not connected
            # yet, the move to this agent follows
            return
        self.hub.accept_offer(call.agent, iid, now)
        call.answered_at = now
        self.hub.publish_interaction(Stage.ANSWERED, call.interaction, agent=call.agent)
        wait = now - call.interaction.arrived
        queue = call.interaction.queue
        self.hub.kpi.answered(queue, wait, now)
        if self.hub.metrics:
            self.hub.metrics.answered.labels(queue, "voice").inc()
            self.hub.metrics.wait.labels(queue, "voice", "answered").observe(wait)

    def _connect_failed(self, event: AgentRingFailed, now: float) -> None:
        uid = event.call
        call = self.calls.get(uid)
        iid = self.prefix + uid
        if call is None or call.agent is None or self.hub.offered_to(iid) != call.agent:
            return
        agent = call.agent
        call.agent = None
        reason = PAUSE_FOR_RING_FAILURE[event.failure]
        if event.failure is RingFailure.NO_ANSWER:  # the agent's: its pop ends "timed_out"
            offers = self.hub.decline_offer(agent, iid, now, timed_out=True)
            self.hub.line_pause(agent, now, reason)
        else:  # a busy or unreachable phone: not the agent's doing, its pop ends "withdrawn"
            self.hub.line_pause(agent, now, reason)  # first: not offered again what it gives back
            offers = self.hub.withdraw_offer(agent, iid, now, reason)
        self.hub.route(offers)

    def _fell_back(self, event: CallFellBack, now: float) -> None:
        """The dialplan's own wait ended.  At once after the arrival, the
        hold music is missing: ``MusicOnHold(default,...)`` returns at once
        when its class has no files, and every caller goes to the fallback
        (QA3: the log said only "after 0 s")."""
        call = self.calls.get(event.call)
        if call is not None and now - call.interaction.arrived < QUICK_FALLBACK:
            log.warn(
                "caller {uid} fell back within {s:.0f} s of arriving: the PBX's hold music"
                " (musiconhold.conf class 'default') may have no files, so its"
                " MusicOnHold returns at once; or DIRIGENT_WAIT is 0",
                uid=event.call,
                s=QUICK_FALLBACK,
            )
        self._fallback(event, now)

    def _fallback(self, event: CallFellBack, now: float) -> None:
        """The dialplan gave up on us (wait too long, or we were down): the
        caller is in the fallback queue or voicemail now, not ours any more."""
        uid = event.call
        call = self.calls.pop(uid, None)
        if call is None:
            return
        self.hub.release(call.interaction.id)
        self.hub.abandon(call.interaction.id, now)
        self.hub.kpi.fallbacks += 1
        self.hub.publish_interaction(Stage.FALLBACK, call.interaction)
        wait = now - call.interaction.arrived
        log.warn("caller {uid} went to the dialplan fallback after {w:.0f} s", uid=uid, w=wait)
        if self.hub.metrics:
            self.hub.metrics.fallback.labels(call.interaction.queue, "voice").inc()

    def _caller_gone(self, uid: str, now: float, vanished: bool, cut_by_pbx: bool = False) -> None:
        call = self.calls.pop(uid)
        uid = call.interaction.id  # from here on: the interaction's id
        self.hub.release(uid)
        queue = call.interaction.queue
        # vanished with the link: it ended at the latest when the link was lost
        lost = vanished and self.lost_at is not None
        if call.answered_at is not None and call.agent is not None:
            ended = max(call.answered_at, self.lost_at or now) if lost else now
            self.hub.publish_interaction(
                Stage.ENDED,
                call.interaction,
                at=ended,
                agent=call.agent,
                outcome=ENDED_PBX_LOST if lost else None,
            )
            if self.hub.handler_of(uid) == call.agent:
                self.hub.route(self.hub.call_ended(call.agent, uid, now))
            if self.hub.metrics:
                self.hub.metrics.handle.labels(queue, "voice").observe(ended - call.answered_at)
            return
        self.hub.abandon(uid, now)
        lost_at = self.lost_at if lost and self._pbx_lost_its_calls() else None
        if cut_by_pbx and not vanished:
            lost_at = now  # ended by the PBX's shutdown or restart, as seen
        if lost_at is not None:
            # a waiting caller gone with the PBX (a crash, a restart): not the
            # caller's doing, so not an abandon (the queue's count, the metric);
            # its wait ends when the link was lost, not at the resync
            ended = max(call.interaction.arrived, lost_at)
            wait = ended - call.interaction.arrived
            self.hub.publish_interaction(
                Stage.ENDED, call.interaction, at=ended, outcome=ENDED_PBX_LOST, wait=wait
            )
        else:
            wait = now - call.interaction.arrived
            self.hub.kpi.abandon(uid, queue, wait, now)
            self.hub.publish_interaction(Stage.ABANDONED, call.interaction, wait=wait)
            if self.hub.metrics:
                self.hub.metrics.abandoned.labels(queue, "voice").inc()
                self.hub.metrics.wait.labels(queue, "voice", "abandoned").observe(wait)
        if call.agent is not None and self.hub.agent(call.agent) is not None:
            self.hub.route(self.hub.route_agent(call.agent, now))

    def _pbx_lost_its_calls(self) -> bool:
        """At a resync after a link loss: did the PBX lose the calls it had
        then (none of them is there now: it crashed or restarted)?  If some
        are, only the link dropped, and a waiting caller gone meanwhile hung
        up (an abandon).  A caller alone on the PBX counts as lost with it."""
        return all(self.telephony.live_call(uid) is None for uid in self._had_at_loss)

    def _agent_lost(self, agent: str, now: float, reason: str) -> None:
        """The agent's nailed-up leg is gone (its phone hung up, or with the
        PBX): paused with ``reason``; a call in its hands went with the leg
        (the shipped ConfBridge profile ends the customer with the agent).
        What was on its way to the agent goes back to its place in the queue
        and on to the next agent (:meth:`Router.withdraw`), never dropped:
        dropped, it was neither waiting nor offered, and nobody routed it
        again.  A caller of ours whom nobody takes at once is put back on
        hold, since its move may have reached the PBX already (in an empty
        ConfBridge it would wait for the agent in silence).  Chat, e-mail and
        SMS in the agent's hands stay there (the desktop still has them)."""
        a = self.hub.agent(agent)
        if a is None or not a.logged_in:
            return
        ep = self.endpoints.get(agent)
        if ep is not None and a.pause_reason not in LEG_REASONS | {PHONE_HUNG_UP}:
            ep.resume = _resume_of(ep, a.pause_reason)
        self.hub.line_pause(agent, now, reason)  # first: not offered again what it gives back
        offers: list[Offer] = []
        withdrawn: list[_Call] = []
        for iid, item in list(a.work.items()):
            if item.phase is Phase.OFFERED:
                call = self.calls.get(iid.removeprefix(self.prefix))
                if call is not None and call.interaction.id == iid:
                    call.agent = None
                    withdrawn.append(call)
                offers += self.hub.withdraw_offer(agent, iid, now, reason)
            elif item.channel is Channel.VOICE:
                self.hub.drop(iid, now, reason)
        self.hub.route(offers)
        for call in withdrawn:
            iid = call.interaction.id
            if self.hub.is_waiting(iid) and iid.removeprefix(self.prefix) in self.calls:
                self._to_hold(call, call.interaction.queue)

    @staticmethod
    def _hold_failed(failure: Any, iid: str) -> None:
        # with its traceback, and counted (dirigent_log_errors_total): the router
        # has the caller waiting while the PBX may still have it with the agent
        log.failure(
            "caller {i}: back on hold failed (its own events say what happened)",
            failure,
            i=iid,
        )


def _interaction_of(iid: str, left: CallLeftOpen, **fields: Any) -> Interaction:
    """The voice interaction of a call the last run left open, taken over."""
    return Interaction(
        iid,
        Channel.VOICE,
        left.queue,
        left.arrived,
        direction=left.direction,
        customer=left.customer,
        **fields,
    )


def _resume_of(ep: AgentEndpoint, reason: str | None) -> str | None:
    """What the agent returns to once its leg is back, paused ``reason`` now:
    a preview's pause is not restored (the record on screen went back), nor
    :data:`FOREIGN_CALL` (that bridge is gone with the leg: what the agent
    asked for meanwhile is kept)."""
    if reason == FOREIGN_CALL:
        return ep.resume
    return None if reason == PREVIEW else reason
