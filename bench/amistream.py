"""Shared by the AMI benchmarks: a realistic event stream and a blasting server.

The stream is what the simulated PBX emits for a dialer-like load (agents
nailed up in their bridges, customer calls of every outcome, AMD, bridging,
hang-ups), recorded once under ``task.Clock`` and replayed as bytes, so the
server side costs nothing while the client is measured.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asterisk.framing import AmiFramer, AmiMessage, encode_message


def dialer_event_stream(calls: int, seed: int = 1) -> list[list[tuple[str, str]]]:
    """Events of ``calls`` outbound calls plus their agents, in emission order."""
    from twisted.internet import task

    from sim.pbx import SimPbx

    clock = task.Clock()
    agents = max(10, calls // 20)
    pbx = SimPbx(clock, seed=seed, agents=agents, agent_answer_delay=0.2)
    out: list[list[tuple[str, str]]] = []
    pbx.subscribe(out.append)
    for n in range(agents):
        ext = str(1001 + n)
        pbx.originate(
            {
                "Channel": f"PJSIP/{ext}",
                "Context": "dirigent-agent",
                "Exten": ext,
                "Timeout": "20000",
                "Variable": [],
            },
            f"a{n}",
            out.append,
        )
    clock.advance(1)
    free = [str(1001 + n) for n in range(agents)]
    for i in range(calls):
        pbx.originate(
            {
                "Channel": f"PJSIP/+4930{i:07d}@customers",
                "Context": "dirigent-outbound",
                "Exten": "s",
                "Timeout": "22000",
                "ChannelId": f"att-{i}",
                "Variable": [f"DIRIGENT_ATTEMPT={i}"],
            },
            f"o{i}",
            out.append,
        )
        clock.advance(0.05)
        if i % 4 == 0:
            for chan in [c for c in pbx.channels.values() if c.far == "live" and c.bridge is None][
                :1
            ]:
                if chan.state == 6 and free:
                    pbx.redirect(chan.name, "dirigent-join", free[i % len(free)], 1)
    for _ in range(600):
        clock.advance(0.5)
    return out


def serve_blob(port_queue: mp.Queue, blob: bytes, paced: bytes | None, rate: float) -> None:
    """Child process: accept one client, answer its Login and resync, then
    send ``blob`` as fast as possible, or ``paced`` messages at ``rate``/s
    stamped with the send time (``BenchT``, CLOCK_MONOTONIC ns)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"Asterisk Call Manager/11.0.0\r\n")
        framer = AmiFramer(expect_banner=False)
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for msg in framer.feed(data):
                if not isinstance(msg, AmiMessage):
                    continue  # the client sends no banner; a bad action gets no answer
                aid = msg.action_id or ""
                action = (msg.get("Action") or "").lower()
                if action == "login":
                    writer.write(encode_message([("Response", "Success"), ("ActionID", aid)]))
                elif action == "coreshowchannels":
                    writer.write(
                        encode_message(
                            [("Response", "Success"), ("ActionID", aid), ("EventList", "start")]
                        )
                    )
                    writer.write(
                        encode_message(
                            [
                                ("Event", "CoreShowChannelsComplete"),
                                ("ActionID", aid),
                                ("EventList", "Complete"),
                                ("ListItems", "0"),
                            ]
                        )
                    )
                elif action == "userevent":  # the login's probe: the event comes back
                    writer.write(encode_message([("Response", "Success"), ("ActionID", aid)]))
                    body = [(k, v) for k, v in msg.headers if k not in ("Action", "ActionID")]
                    writer.write(encode_message([("Event", "UserEvent"), *body]))
                elif action == "benchblast":
                    writer.write(encode_message([("Response", "Success"), ("ActionID", aid)]))
                    writer.write(blob)
                    await writer.drain()
                elif action == "benchpaced":
                    writer.write(encode_message([("Response", "Success"), ("ActionID", aid)]))
                    await pace(writer)
                elif action == "logoff":
                    writer.write(encode_message([("Response", "Goodbye"), ("ActionID", aid)]))
                    await writer.drain()
                    writer.close()
                    return
                else:
                    writer.write(encode_message([("Response", "Success"), ("ActionID", aid)]))
            await writer.drain()

    async def pace(writer: asyncio.StreamWriter) -> None:
        assert paced is not None
        messages = paced.split(b"\r\n\r\n")[:-1]
        per_tick = max(1, int(rate / 1000))  # 1 ms ticks
        start = time.monotonic()
        for i in range(0, len(messages), per_tick):
            target = start + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            stamp = str(time.monotonic_ns()).encode()
            writer.write(
                b"".join(
                    m + b"\r\nBenchT: " + stamp + b"\r\n\r\n" for m in messages[i : i + per_tick]
                )
            )
        await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_queue.put(server.sockets[0].getsockname()[1])
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_server(
    blob: bytes, paced: bytes | None = None, rate: float = 5000.0
) -> tuple[mp.Process, int]:
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=serve_blob, args=(queue, blob, paced, rate), daemon=True)
    proc.start()
    port = queue.get(timeout=30)
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # listening
    return proc, port
