"""Actions are validated before sending: no AMI header injection."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asterisk import actions as ami
from asterisk.framing import AmiFramer, encode_message


def test_caller_id_with_crlf_cannot_inject_a_second_action():
    with pytest.raises(ami.ActionError) as err:
        ami.originate(
            "PJSIP/+4930123@customers",
            context="dirigent-outbound",
            exten="s",
            caller_id='"x" <1>\r\nAction: Originate\r\nChannel: PJSIP/+1900555@customers',
        )
    assert err.value.field == "CallerID" and "control character" in err.value.reason


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "tab\there", "del\x7f"])
def test_control_characters_are_refused_with_the_field_name(bad):
    with pytest.raises(ami.ActionError, match=r"^Channel: contains a control character"):
        ami.hangup(bad)


def test_a_value_str_isprintable_passes_holds_no_control_character() -> None:
    """validate_headers searches a value for control characters only when
    str.isprintable() says no: every character the search refuses (C0
    controls and DEL) is one isprintable() refuses, and non-ASCII text that
    is not printable (a line separator, NEL) is searched and let through."""
    for code in range(0x10000):
        char = chr(code)
        if ami._CONTROL_RE.search(char):
            assert not char.isprintable(), hex(code)
    for text in ("caf\u00e9", "a\u2028b", "x\x85y", "\u00a0"):
        assert ami.validate_headers([("Data", text)]) == [("Data", text)]


def test_over_long_values_and_empty_required_fields_are_refused():
    with pytest.raises(ami.ActionError, match="Data: longer than 1024"):
        ami.originate("PJSIP/1001", application="Playback", data="x" * 2000)
    with pytest.raises(ami.ActionError, match="Channel: required and empty"):
        ami.redirect("", "dirigent-inbound", "s")
    with pytest.raises(ami.ActionError, match="Variable BAD NAME: invalid channel variable name"):
        ami.originate("PJSIP/1001", context="c", exten="s", variables={"BAD NAME": "1"})


def test_originate_needs_either_a_dialplan_target_or_an_application():
    with pytest.raises(ami.ActionError, match="either Context and Exten, or Application"):
        ami.originate("PJSIP/1001")
    with pytest.raises(ami.ActionError, match="either"):
        ami.originate("PJSIP/1001", context="c", exten="s", application="Wait")


def test_caller_cannot_set_action_or_action_id():
    with pytest.raises(ami.ActionError, match="ActionID: set by the session"):
        ami.action("Ping", [("ActionID", "forged")])


def test_originate_is_always_async_and_carries_its_channel_id_and_variables():
    action = ami.originate(
        "PJSIP/+4930123@customers",
        context="dirigent-outbound",
        exten="s",
        channel_id="attempt-42",
        variables={"DIRIGENT_ATTEMPT": "42"},
        caller_id='"ACME" <+4930999>',
    )
    headers = dict(action.headers)
    assert headers["Async"] == "true" and headers["ChannelId"] == "attempt-42"
    assert ("Variable", "DIRIGENT_ATTEMPT=42") in action.headers


@given(st.text(max_size=200))
def test_any_accepted_value_frames_back_as_exactly_one_header(value):
    try:
        action = ami.setvar("PJSIP/1001-00000001", "DIRIGENT_NOTE", value)
    except ami.ActionError as exc:
        assert exc.field == "Value"
        assert any(ord(c) < 32 or ord(c) == 127 for c in value) or len(value) > ami.MAX_VALUE_LENGTH
        return
    wire = encode_message(action.all_headers("id-1"))
    (msg,) = AmiFramer(expect_banner=False).feed(wire)
    assert [k for k, _ in msg.headers] == ["Action", "ActionID", "Channel", "Variable", "Value"]
    assert msg.get("Value") == value
