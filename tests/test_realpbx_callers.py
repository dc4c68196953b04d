"""The real-PBX tier's inbound callers acknowledge an answer in its dialog
(QA round 3, finding 11): pyVoIP's ACK carried a To tag of its own, so
Asterisk hung every inbound call up 32 s after the answer (cause 18)."""

from __future__ import annotations

from pyVoIP.VoIP import VoIPPhone

from tests.realpbx.callers import ack_in_the_dialog

ANSWER = (
    "SIP/2.0 200 OK\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:40000;rport;branch=z9hG4bK776asdhds\r\n"
    "From: <sip:4915112345004@127.0.0.1>;tag=abc123\r\n"
    "To: <sip:4930555000@127.0.0.1>;tag=8851d77f-98b0-47f7-978c-1b161477e879\r\n"
    "Call-ID: 42@127.0.0.1\r\n"
    "CSeq: 2 INVITE\r\n"
    "Content-Length: 0\r\n\r\n"
)


def test_the_ack_carries_the_answers_to_tag():
    from pyVoIP.SIP import SIPMessage  # after pyVoIP.VoIP: alone it is a circular import

    phone = VoIPPhone("127.0.0.1", 5060, "4915112345004", "", myIP="127.0.0.1", sipPort=40000)
    sip = phone.sip
    sip.tagLibrary["42@127.0.0.1"] = "abc123"
    answer = SIPMessage(ANSWER.encode())
    assert "tag=8851d77f" not in sip.gen_ack(answer)  # pyVoIP's own: a tag of its making
    ack_in_the_dialog(sip)
    to = [line for line in sip.gen_ack(answer).split("\r\n") if line.startswith("To: ")]
    assert to == ["To: <sip:4930555000@127.0.0.1>;tag=8851d77f-98b0-47f7-978c-1b161477e879"]
