"""Matching originates to their outcome.

An async Originate is answered at once (``Originate successfully queued``);
its result arrives later as an ``OriginateResponse`` *event* carrying the
Originate's ActionID and a ``Reason``.  The recorded Asterisk 22 reports SIP
486, 503 and 404 all as ``Reason: 0``: the outcome is only in the hang-up cause
(seen in ``HangupRequest``/``Hangup`` of the channel whose Uniqueid we fixed
with ``ChannelId``) and in ``DialEnd``'s ``DialStatus``.  This tracker
collects those per pending originate and emits one :class:`OriginateResult`.

Correlation is by ActionID *and* channel: ``OriginateResponse`` is an event
Asterisk sends to every AMI session (``ast_manager_event_multichan`` in
main/manager.c), minutes after the action for a ring timeout.  A response
whose ActionID is not one we wait for, or whose ``Uniqueid`` is not the
``ChannelId`` we set, belongs to another process (a sibling server, or the
process before a restart that used the same ActionID) and is never taken as
ours: :meth:`OriginateTracker.stray` says which, the session logs and counts it.

A call cut by a PBX shutdown or restart (``SoftHangupRequest`` with the
SHUTDOWN flag) ends :attr:`~asterisk.events.Outcome.UNKNOWN` unless it was
answered: the far end never said busy or no answer.

Pure: time comes in as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

from asterisk.events import (
    ChannelCreated,
    ChannelHungUp,
    DialEnded,
    HangupCauseSeen,
    OriginateResponse,
    OriginateResult,
    Outcome,
    PbxEvent,
    SoftHangup,
    SoftHangupRequested,
    classify_originate,
    outcome_from_cause,
)

#: How long to wait for a hang-up cause after a failed ``OriginateResponse``
#: when the channel exists but has not hung up yet (over SIP the Hangup with
#: the cause follows the response: Reason 0 for 486/503/404, Reason 3 with
#: cause 19 for a ring timeout).  In every recorded case the cause came
#: within 1 ms; 2 s covers a loaded PBX.
CAUSE_GRACE_SECONDS = 2.0

#: ``OriginateResponse`` Reason of an answered call: nothing to wait for.
REASON_ANSWERED = 4

_DIAL_STATUS = {
    "BUSY": Outcome.BUSY,
    "CONGESTION": Outcome.CONGESTION,
    "NOANSWER": Outcome.NO_ANSWER,
    "CHANUNAVAIL": Outcome.FAILED,
    "ANSWER": Outcome.ANSWERED,
}


@dataclass(slots=True)
class _Pending:
    action_id: str
    uniqueid: str | None
    cause: int | None = None
    dial_status: str | None = None
    channel_seen: bool = False
    response: OriginateResponse | None = None
    deadline: float = 0.0
    cut_by_shutdown: bool = False


class OriginateTracker:
    def __init__(self, pbx: str) -> None:
        self.pbx = pbx
        self._by_action: dict[str, _Pending] = {}
        self._by_uid: dict[str, _Pending] = {}

    def expect(self, action_id: str, uniqueid: str | None) -> None:
        """Register an Originate we sent (``uniqueid`` = its ``ChannelId``)."""
        pending = _Pending(action_id, uniqueid)
        self._by_action[action_id] = pending
        if uniqueid:
            self._by_uid[uniqueid] = pending

    def forget(self, action_id: str) -> None:
        pending = self._by_action.pop(action_id, None)
        if pending and pending.uniqueid:
            self._by_uid.pop(pending.uniqueid, None)

    def pending_action_ids(self) -> list[str]:
        return list(self._by_action)

    def stray(self, event: OriginateResponse) -> str | None:
        """Why ``event`` is not the answer to an Originate of ours, or None.

        ``"unknown-action"``: no Originate of ours has that ActionID (another
        client's, or one of a process before ours).  ``"foreign-channel"``: the
        ActionID is ours but the channel is not the one we created with
        ``ChannelId`` (a process that used the same ActionID)."""
        pending = self._by_action.get(event.action_id)
        if pending is None:
            return "unknown-action"
        if pending.uniqueid and event.uniqueid != pending.uniqueid:
            return "foreign-channel"
        return None

    def on_event(self, event: PbxEvent, now: float) -> OriginateResult | None:
        match event:
            case OriginateResponse(action_id=aid) if self.stray(event) is None:
                pending = self._by_action[aid]
                pending.response = event
                if pending.uniqueid is None and event.uniqueid:
                    pending.uniqueid = event.uniqueid
                    self._by_uid[event.uniqueid] = pending
                if (
                    event.reason != REASON_ANSWERED
                    and pending.cause is None
                    and pending.channel_seen
                    and not pending.cut_by_shutdown
                ):
                    pending.deadline = now + CAUSE_GRACE_SECONDS
                    return None  # wait for the hang-up that carries the cause
                return self._resolve(pending)
            case SoftHangupRequested(uniqueid=uid) if uid in self._by_uid:
                if event.flags & SoftHangup.SHUTDOWN:
                    self._by_uid[uid].cut_by_shutdown = True
            case ChannelCreated(uniqueid=uid) if uid in self._by_uid:
                self._by_uid[uid].channel_seen = True
            case HangupCauseSeen(uniqueid=uid) if uid in self._by_uid:
                self._by_uid[uid].cause = event.cause
            case ChannelHungUp(uniqueid=uid) if uid in self._by_uid:
                pending = self._by_uid[uid]
                if event.cause and event.cause != 16:
                    pending.cause = pending.cause or event.cause
                if pending.response is not None:
                    return self._resolve(pending)
            case DialEnded(dest_uniqueid=uid) if uid in self._by_uid:
                self._by_uid[uid].dial_status = event.dial_status
        return None

    def expire(self, now: float) -> list[OriginateResult]:
        """Resolve originates whose cause did not come within the grace time."""
        due = [
            p for p in self._by_action.values() if p.response and p.deadline and p.deadline <= now
        ]
        return [self._resolve(p) for p in due]

    def _resolve(self, pending: _Pending) -> OriginateResult:
        response = pending.response
        assert response is not None
        outcome = classify_originate(response.reason, pending.cause)
        if (
            response.reason == 0
            and outcome_from_cause(pending.cause) is None
            and pending.dial_status in _DIAL_STATUS
        ):
            outcome = _DIAL_STATUS[pending.dial_status]
        if pending.cut_by_shutdown and outcome is not Outcome.ANSWERED:
            outcome = Outcome.UNKNOWN  # the PBX went down, the far end said nothing
        self.forget(pending.action_id)
        return OriginateResult(
            self.pbx, pending.action_id, pending.uniqueid, outcome, response.reason, pending.cause
        )
