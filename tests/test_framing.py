"""The AMI framer: recorded streams, malformed input, property tests."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from asterisk.framing import (
    MAX_LINE_BYTES,
    AmiFramer,
    AmiMessage,
    BadMessage,
    Banner,
    encode_message,
)
from tests.transcript import all_transcripts, load_transcript, received_bytes


def test_every_recorded_stream_frames_into_the_messages_asterisk_sent():
    for path, transcript in all_transcripts():
        for conn in transcript.connections:
            raw = received_bytes(conn)
            items = AmiFramer().feed(raw)
            assert items and isinstance(items[0], Banner), path
            assert items[0].version == "11.0.0"
            messages = [i for i in items[1:]]
            assert all(isinstance(m, AmiMessage) for m in messages), (path, messages[:3])
            assert [m.headers for m in messages] == [tuple(m) for m in conn.received], path


def test_stream_split_at_every_byte_gives_the_same_messages():
    raw = received_bytes(load_transcript("connect.ami").connections[1])
    whole = AmiFramer().feed(raw)
    framer = AmiFramer()
    pieces = []
    for i in range(len(raw)):
        pieces += framer.feed(raw[i : i + 1])
    assert pieces == whole


def test_lf_only_line_ends_are_accepted():
    items = AmiFramer(expect_banner=False).feed(b"Event: Hangup\nUniqueid: 1.2\nCause: 16\n\n")
    assert items == [AmiMessage((("Event", "Hangup"), ("Uniqueid", "1.2"), ("Cause", "16")))]


def test_utf8_character_split_across_reads_is_decoded_whole():
    data = "Event: UserEvent\r\nName: Müller\r\n\r\n".encode()
    cut = data.index("ü".encode()) + 1  # between the two bytes of ü
    framer = AmiFramer(expect_banner=False)
    assert framer.feed(data[:cut]) == []
    (msg,) = framer.feed(data[cut:])
    assert msg.get("Name") == "Müller"


def test_invalid_utf8_is_replaced_not_fatal():
    (msg,) = AmiFramer(expect_banner=False).feed(b"Event: X\r\nName: \xff\xfeab\r\n\r\n")
    assert msg.get("Name") == "\ufffd\ufffdab"


def test_missing_blank_line_between_two_events_still_gives_two_messages():
    data = b"Event: Newchannel\r\nUniqueid: 1\r\nEvent: Hangup\r\nUniqueid: 1\r\n\r\n"
    items = AmiFramer(expect_banner=False).feed(data)
    assert [m.event for m in items] == ["Newchannel", "Hangup"]


def test_originate_response_keeps_event_and_response_in_one_message():
    data = b"Event: OriginateResponse\r\nActionID: a\r\nResponse: Failure\r\nReason: 0\r\n\r\n"
    (msg,) = AmiFramer(expect_banner=False).feed(data)
    assert msg.event == "OriginateResponse" and msg.response == "Failure"


def test_huge_header_is_reported_and_the_next_message_survives():
    framer = AmiFramer(expect_banner=False)
    out = framer.feed(b"Event: Big\r\nData: " + b"x" * (MAX_LINE_BYTES + 10))
    out += framer.feed(b"x" * 1000 + b"\r\n\r\nEvent: Small\r\nA: b\r\n\r\n")
    assert isinstance(out[0], BadMessage) and "longer than" in out[0].reason
    assert out[1] == AmiMessage((("Event", "Small"), ("A", "b")))
    assert framer.pending_bytes == 0


def test_line_without_colon_marks_the_message_bad():
    out = AmiFramer(expect_banner=False).feed(b"Event: A\r\ngarbage line\r\n\r\nEvent: B\r\n\r\n")
    assert isinstance(out[0], BadMessage) and "Name: value" in out[0].reason
    assert out[1].event == "B"


def test_repeated_headers_are_kept_in_order():
    (msg,) = AmiFramer(expect_banner=False).feed(
        b"Response: Success\r\nOutput: a\r\nOutput: b\r\n\r\n"
    )
    assert msg.get_all("Output") == ["a", "b"]


# -- properties ---------------------------------------------------------------------
header_names = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)
header_values = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\n"), max_size=60
).map(lambda v: v.lstrip(" "))
messages = st.lists(st.tuples(header_names, header_values), min_size=1, max_size=8).map(
    lambda hs: [("Event", "X"), *[(k, v) for k, v in hs if k not in ("Event", "Response")]]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Uniqueid", "uniqueid", "UNIQUEID", "Channel", "X"]), header_values
        ),
        max_size=8,
    ),
    st.sampled_from(["Uniqueid", "uniqueid", "Channel", "channel", "Missing"]),
)
def test_a_header_reads_as_its_first_value_same_spelling_first(headers, name):
    msg = AmiMessage(tuple(headers))
    exact = [v for k, v in headers if k == name]
    folded = [v for k, v in headers if k.lower() == name.lower()]
    expected = exact[0] if exact else folded[0] if folded else None
    assert msg.get(name) == expected
    assert msg.get(name) == expected  # the second read (from the index) agrees


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000), st.lists(st.integers(1, 64), max_size=50))
def test_arbitrary_bytes_never_crash_and_memory_stays_bounded(data, cuts):
    framer = AmiFramer()
    pos = 0
    for cut in cuts:
        for item in framer.feed(data[pos : pos + cut]):
            assert isinstance(item, Banner | AmiMessage | BadMessage)
        pos += cut
    framer.feed(data[pos:])
    assert framer.pending_bytes <= MAX_LINE_BYTES + 64


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, min_size=1, max_size=6), st.integers(1, 50))
def test_encoded_messages_frame_back_identically_whatever_the_chunking(msgs, chunk):
    raw = b"".join(encode_message(m) for m in msgs)
    framer = AmiFramer(expect_banner=False)
    got = []
    for i in range(0, len(raw), chunk):
        got += framer.feed(raw[i : i + chunk])
    assert [m.headers for m in got] == [tuple(m) for m in msgs]


@settings(max_examples=200, deadline=None)
@given(st.lists(messages, min_size=2, max_size=5), st.binary(min_size=1, max_size=300))
def test_garbage_in_the_middle_costs_at_most_the_messages_it_touches(msgs, junk):
    junk = junk.replace(b"\n", b"")  # one bad line, not a bad stream
    raw = encode_message(msgs[0]) + b"Event: Broken\r\n" + junk + b"\r\n\r\n"
    raw += b"".join(encode_message(m) for m in msgs[1:])
    got = AmiFramer(expect_banner=False).feed(raw)
    good = [m for m in got if isinstance(m, AmiMessage) and m.event == "X"]
    assert [m.headers for m in good][-len(msgs[1:]) :] == [tuple(m) for m in msgs[1:]]
