"""Domain errors become HTTP statuses by their type, never by their text."""

from __future__ import annotations

import pytest

from core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, Unavailable
from cti.errors import ApiError, answer
from routing.agent import AgentState, IllegalTransition
from routing.model import RoutingError, UnknownName
from routing.router import Router


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (Invalid("queue", "unknown queue 'x'"), 400),  # the words "unknown queue" decide nothing
        (NotFound("list", "no list 'a.csv'"), 404),
        (Forbidden("agent", "ben did not take call 7"), 403),
        (Conflict("state", "the call is still up"), 409),
        (Unavailable("database", "not configured"), 503),
        (RoutingError("capacity", "must not be negative"), 400),
        (UnknownName("agent", "unknown agent 'zoe'"), 404),
        (IllegalTransition("anna", AgentState.LOGGED_OUT, "log out"), 409),
        (ApiError(429, "login", "too many failed logins"), 429),
    ],
)
def test_status_by_type(exc, status):
    found = answer(exc)
    assert found is not None and found[0] == status


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("code: give the result"),
        KeyError("anna"),
        LookupError("agent: unknown agent 'zoe'"),
        PermissionError("agent: ben did not take call 7"),
    ],
    ids=["ValueError", "KeyError", "LookupError", "PermissionError"],
)
def test_a_built_in_error_is_a_server_error_whatever_its_message(exc):
    """A stray ``KeyError`` or ``ValueError`` is a bug in Dirigent, not a bad
    request or an unknown name: it was answered 400/404 (its message read as
    "field: reason") and not logged; now it is a 500, logged and counted."""
    assert answer(exc) is None


def test_the_settings_errors_of_the_dialer_and_the_merge_are_domain_errors():
    """They reach the API (a campaign PATCH, a list merge): a 400 by type, field kept."""
    from dialer.compliance import PolicyError
    from dialer.pacing import PacingError
    from dialer.retry import RetryError
    from store.lists_merge import MergeError

    for cls in (PolicyError, PacingError, RetryError):
        exc = cls("abandon_target", "too high")
        assert answer(exc) == (400, "abandon_target", "too high") and exc.key == "abandon_target"
        assert str(exc) == "abandon_target: too high", "the command line reads the same"
    assert answer(MergeError("keep", "no record")) == (400, "keep", "no record")


def test_the_field_comes_from_the_error_not_its_message():
    assert answer(Invalid("skills.de", "level: 11")) == (400, "skills.de", "level: 11")
    assert answer(RuntimeError("boom")) is None, "not a domain error: a 500, logged"


def test_an_illegal_agent_transition_is_a_conflict_by_type_with_its_message_kept():
    exc = IllegalTransition("anna", AgentState.LOGGED_OUT, "log out")
    assert isinstance(exc, Conflict), "409 by its type, no special case in cti.errors"
    assert str(exc) == "agent anna: cannot log out while logged_out"
    assert answer(exc) == (409, "state", "agent anna: cannot log out while logged_out")


def test_domain_errors_stay_what_callers_caught_before():
    assert issubclass(Invalid, ValueError) and issubclass(NotFound, LookupError)
    assert issubclass(Forbidden, PermissionError) and issubclass(RoutingError, ValueError)
    assert issubclass(UnknownName, DomainError)
    with pytest.raises(UnknownName) as caught:
        Router({}).login("zoe", 0.0, [])
    assert str(caught.value) == "agent: unknown agent 'zoe'"
