"""Resync: rebuild the channel mirror of a PBX with 10,000 live channels.

A second process runs the simulated PBX (AMI over loopback TCP) with N live
channels (inbound callers waiting, a fifth of them bridged in pairs).  The
client connects (resync into an empty mirror), then cuts its own link and
reconnects (resync against a full mirror: the case after a network cut).
Both times are measured from sending ``CoreShowChannels`` to the diff being
applied and emitted.  Memory of the mirror is measured with tracemalloc.
Baseline in the same run: panoramisk parsing the same listing in memory.

    python bench/resync.py [--channels 10000] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from asterisk.events import ResyncCompleted
from asterisk.framing import AmiFramer, AmiMessage, encode_message
from asterisk.mirror import ChannelMirror, ChannelSnapshot
from asterisk.session import AmiSession, PbxSettings
from bench.common import emit, machine


def pbx_process(port_queue: mp.Queue, channels: int) -> None:
    from dirigent import reactor as reactor_setup

    reactor_setup.install()
    from twisted.internet import reactor

    from sim.ami_server import SimAmiServer
    from sim.pbx import SimPbx

    pbx = SimPbx(reactor, seed=1, agents=1, fallback_after=1e9, inbound_patience_mean=1e9)
    calls = [pbx.inbound_call(queue="sales") for _ in range(channels)]
    for a, b in zip(calls[: channels // 10], calls[channels // 10 : channels // 5], strict=True):
        pbx.bridge(a.name, b.name)
    server = SimAmiServer(pbx, reactor)
    server.listen(0)
    port_queue.put((server.address[1], pbx.core_show_channels("x")))
    reactor.run()


async def measure(port: int) -> tuple[float, float, int]:
    session = AmiSession(
        PbxSettings(
            "bench",
            "127.0.0.1",
            port,
            secret="secret",
            action_timeout=60,
            backoff_initial=0.01,
            backoff_max=0.02,
            keepalive_interval=3600,
        )
    )
    done: list[ResyncCompleted] = []
    session.subscribe(lambda e: done.append(e) if isinstance(e, ResyncCompleted) else None)
    session.start()
    while not done:
        await asyncio.sleep(0.01)
    first = done[0].seconds
    assert session._protocol is not None
    session._protocol.transport.abort()  # a network cut
    while len(done) < 2:
        await asyncio.sleep(0.01)
    again = done[1].seconds
    count = len(session.mirror.channels)
    await session.stop()
    return first, again, count


def mirror_memory(items: list) -> float:
    """Bytes held by a mirror of the listing, strings included (decoded here,
    under tracing, as the session decodes them off the wire)."""
    blobs = [encode_message(h) for h in items]
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    framer = AmiFramer(expect_banner=False)
    snapshots = [
        ChannelSnapshot.from_message(m)
        for b in blobs
        for m in framer.feed(b)
        if isinstance(m, AmiMessage)
    ]
    mirror = ChannelMirror("bench")
    mirror.resync(snapshots)
    del snapshots, framer
    used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(base, "filename"))
    tracemalloc.stop()
    assert len(mirror.channels) == len(items) and isinstance(next(iter(mirror.channels)), str)
    return used / 1e6


def panoramisk_list_parse(items: list) -> float:
    from panoramisk.ami_protocol import AMIProtocol

    blob = b"".join(encode_message(h) for h in items)

    class Factory:
        def dispatch(self, message: object) -> None:
            pass

    class Transport:
        def close(self) -> None:
            pass

    async def go() -> float:
        proto = AMIProtocol()
        proto.connection_made(Transport())
        proto.factory = Factory()
        t0 = time.perf_counter()
        for i in range(0, len(blob), 65536):
            proto.data_received(blob[i : i + 65536])
        return time.perf_counter() - t0

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--channels", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    queue: mp.Queue = mp.Queue()
    proc = mp.Process(target=pbx_process, args=(queue, args.channels), daemon=True)
    proc.start()
    port, items = queue.get(timeout=300)
    firsts, agains = [], []
    try:
        for _ in range(args.runs):
            first, again, count = asyncio.run(measure(port))
            assert count == args.channels, count
            firsts.append(first)
            agains.append(again)
    finally:
        proc.terminate()
        proc.join()
    framer_check = AmiFramer(expect_banner=False).feed(b"".join(encode_message(h) for h in items))
    assert len(framer_check) == len(items)
    result = {
        "channels": args.channels,
        "resync_seconds": round(statistics.median(firsts), 3),
        "resync_after_reconnect_seconds": round(statistics.median(agains), 3),
        "mirror_memory_mb": round(mirror_memory(items), 1),
        "baseline_panoramisk_list_parse_seconds": round(panoramisk_list_parse(items), 3),
        "runs": args.runs,
        "machine": machine(),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
