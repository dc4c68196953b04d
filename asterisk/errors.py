"""Errors the PBX side raises to its callers, whichever implementation of
the Telephony port (AMI or the in-process simulation) is wired in."""

from __future__ import annotations


class AmiError(Exception):
    """Base of the errors an AMI session raises to its callers."""


class NotConnected(AmiError):
    """No logged-in session: the action was not sent."""


class ActionFailed(AmiError):
    """Asterisk answered ``Response: Error``; ``message`` is its text."""

    def __init__(self, action: str, message: str) -> None:
        super().__init__(f"{action} failed: {message}")
        self.action = action
        self.message = message


class ActionOutcomeUnknown(AmiError):
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


__all__ = ["ActionFailed", "ActionOutcomeUnknown", "AmiError", "LoginFailed", "NotConnected"]
