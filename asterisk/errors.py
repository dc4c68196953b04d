"""Errors the PBX side raises to its callers, whichever implementation of
the link (AMI or the in-process simulation) is wired in.

Each is also the port's domain error (:mod:`core.telephony`), so the ACD
and the dialer catch ``OutcomeUnknown`` or ``CommandRefused`` without
knowing that AMI is behind them."""

from __future__ import annotations

from core.telephony import CommandRefused, OutcomeUnknown, PbxUnavailable, TelephonyError


class AmiError(TelephonyError):
    """Base of the errors an AMI session raises to its callers."""


class NotConnected(AmiError, PbxUnavailable):
    """No logged-in session: the action was not sent."""


class ActionFailed(AmiError, CommandRefused):
    """Asterisk answered ``Response: Error``; ``message`` is its text."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action} failed: {message}")
        self.action = action
        self.message = message


class ActionOutcomeUnknown(AmiError, OutcomeUnknown):
    """The link dropped while the action was in flight.

    It may or may not have been executed; it is *not* re-sent.  For an
    Originate that means: reconcile from the PBX after resync, never redial.
    """

    def __init__(self, action: str) -> None:
        super().__init__(
            f"{action}: outcome unknown, the AMI link dropped while it was in flight (not re-sent)"
        )
        self.action = action


class LoginFailed(AmiError):
    pass


__all__ = [
    "ActionFailed",
    "ActionOutcomeUnknown",
    "AmiError",
    "LoginFailed",
    "MissingPermission",
    "NotConnected",
]


class MissingPermission(AmiError):
    """The AMI user may not read or write what Dirigent needs (its ``read`` /
    ``write`` classes in manager.conf): Dirigent stays off that PBX and says
    which class is missing, rather than run half-deaf."""


class PbxOwned(AmiError):
    """Another Dirigent holds the PBX's lease: this one does not take its
    agents and calls over (``[[pbx]] takeover = true`` does, on purpose)."""

    def __init__(self, owner: str, until: float) -> None:
        super().__init__(
            f"driven by another Dirigent ({owner}, lease renewed until {until:.0f}); not taking"
            " it over (set takeover = true in its [[pbx]] table to take it over)"
        )
        self.owner = owner
        self.until = until
