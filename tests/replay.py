"""A fake Asterisk that replays a recorded transcript over real TCP.

Each accepted connection plays the next recorded connection.  When the client
sends an action, the server looks for the next recorded client message with
the same ``Action`` and sends what the real Asterisk sent after it, with the
recorded ActionID replaced by the client's.  Recorded steps skipped on the
way still deliver their events (not their responses).  Actions the recording
does not contain (our resync's ``CoreShowChannels``, keepalive ``Ping``)
get a plausible generic answer.  A recorded connection that the peer closed
is closed at the same point; recorded refused reconnects become accepted
connections that close at once.
"""

from __future__ import annotations

import asyncio
import time

from asterisk.framing import NEED_DATA, AmiFramer, AmiMessage, encode_message
from asterisk.session import PROBE_EVENT
from tests.transcript import Connection, Msg, Transcript


def _action(msg: Msg) -> str:
    return next((v for k, v in msg if k.lower() == "action"), "").lower()


def _action_id(msg: Msg | AmiMessage) -> str | None:
    headers = msg.headers if isinstance(msg, AmiMessage) else msg
    return next((v for k, v in headers if k.lower() == "actionid"), None)


def empty_list(aid: str | None, complete: str) -> list[list[tuple[str, str]]]:
    """Asterisk's answer to a list action with no items (start, then Complete)."""
    ident = [("ActionID", aid)] if aid else []
    return [
        [
            ("Response", "Success"),
            *ident,
            ("EventList", "start"),
            ("Message", "Channels will follow"),
        ],
        [("Event", complete), *ident, ("EventList", "Complete"), ("ListItems", "0")],
    ]


class ReplayServer:
    def __init__(self, transcript: Transcript, refuse_between: int = 0) -> None:
        self.transcript = transcript
        self.refuse_between = refuse_between
        self.connections = 0
        self.actions: list[AmiMessage] = []
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[:2]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.connections
        self.connections += 1
        self._writers.add(writer)
        try:
            conns = self.transcript.connections
            if index >= 1 and index <= self.refuse_between:
                return  # a refused reconnect: accepted, then closed at once
            recorded = conns[min(index - self.refuse_between if index else 0, len(conns) - 1)]
            await self._play(recorded, reader, writer)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _play(
        self, conn: Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        writer.write((conn.banner or "Asterisk Call Manager/11.0.0").encode() + b"\r\n")
        steps = list(conn.steps[1:])
        for reply in conn.steps[0].replies:
            writer.write(encode_message(reply))
        framer = AmiFramer(expect_banner=False)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            framer.receive_data(data)
            while (item := framer.next_message()) is not NEED_DATA:
                if not isinstance(item, AmiMessage):
                    continue
                self.actions.append(item)
                if self._answer(item, steps, writer):
                    await writer.drain()
                    return
            await writer.drain()

    def _answer(self, msg: AmiMessage, steps: list, writer: asyncio.StreamWriter) -> bool:
        """Send the recorded answer; True when the recorded peer closed here."""
        name = (msg.get("Action") or "").lower()
        client_id = msg.action_id
        if name == "userevent" and msg.get("UserEvent") == PROBE_EVENT:
            # the login's probe (no recording has it): answered as Asterisk
            # does, with the event itself to a user that may read "user"
            ident = [("ActionID", client_id)] if client_id else []
            body = [(k, v) for k, v in msg.headers if k not in ("Action", "ActionID")]
            writer.write(encode_message([("Response", "Success"), *ident]))
            writer.write(encode_message([("Event", "UserEvent"), ("Privilege", "user,all"), *body]))
            return False
        for i, step in enumerate(steps):
            if step.sent is not None and _action(step.sent) == name:
                for skipped in steps[:i]:
                    for reply in skipped.replies:
                        if reply and reply[0][0] == "Event":
                            writer.write(encode_message(reply))
                del steps[: i + 1]
                recorded_id = _action_id(step.sent)
                for reply in step.replies:
                    if recorded_id is not None and client_id is not None:
                        reply = [
                            (k, client_id if k == "ActionID" and v == recorded_id else v)
                            for k, v in reply
                        ]
                    writer.write(encode_message(reply))
                return step.closed
        return self._generic(name, client_id, writer)

    @staticmethod
    def _generic(name: str, aid: str | None, writer: asyncio.StreamWriter) -> bool:
        ident = [("ActionID", aid)] if aid else []
        if name == "ping":
            writer.write(
                encode_message(
                    [
                        ("Response", "Success"),
                        *ident,
                        ("Ping", "Pong"),
                        ("Timestamp", f"{time.time():.6f}"),
                    ]
                )
            )
        elif name == "coreshowchannels":
            for message in empty_list(aid, "CoreShowChannelsComplete"):
                writer.write(encode_message(message))
        elif name == "logoff":
            writer.write(
                encode_message(
                    [("Response", "Goodbye"), *ident, ("Message", "Thanks for all the fish.")]
                )
            )
            return True
        else:
            writer.write(encode_message([("Response", "Success"), *ident]))
        return False
