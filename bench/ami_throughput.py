"""AMI event throughput and latency through the full adapter path.

Full path: simulated-PBX event stream over loopback TCP (served by a second
process) -> panoramisk protocol with our framer -> domain events -> channel
mirror -> originate tracker -> one subscriber, with Prometheus counters on.

Compared in the same run with panoramisk's own bare parse rate (its
``AMIProtocol.data_received`` on the same bytes, in memory, dispatch to a
no-op) and with the pieces of our path in memory.

    python bench/ami_throughput.py [--calls N] [--runs 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry

from asterisk import actions as ami
from asterisk.events import normalize
from asterisk.framing import AmiFramer, AmiMessage, encode_message
from asterisk.metrics import AmiMetrics
from asterisk.mirror import ChannelMirror
from asterisk.session import AmiSession, PbxSettings
from bench.amistream import dialer_event_stream, start_server
from bench.common import emit, machine


class BenchSession(AmiSession):
    """Counts dispatched AMI events and, for stamped ones, their latency."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.count = 0
        self.t0 = self.t1 = 0.0  # perf_counter at the blast's start and end
        self.latencies_ns: list[int] = []

    def _dispatch(self, message: AmiMessage) -> None:
        super()._dispatch(message)
        self.count += 1
        stamp = message.headers[-1]
        if stamp[0] == "BenchT":
            self.latencies_ns.append(time.monotonic_ns() - int(stamp[1]))


async def full_path(port: int, events: int, action: str) -> BenchSession:
    session = BenchSession(
        PbxSettings(
            "bench", "127.0.0.1", port, secret="x", action_timeout=120.0, keepalive_interval=3600
        ),
        metrics=AmiMetrics(CollectorRegistry()),
    )
    session.subscribe(lambda e: None)
    session.start()
    await session.wait_connected(10)
    await asyncio.sleep(0.2)  # resync done
    session.count = 0
    session.t0 = time.perf_counter()
    await session.send(ami.action(action))
    while session.count < events:
        await asyncio.sleep(0.001)
    session.t1 = time.perf_counter()
    await session.stop()
    return session


def panoramisk_bare(blob: bytes) -> float:
    from panoramisk.ami_protocol import AMIProtocol

    class Factory:
        count = 0

        def dispatch(self, message: object) -> None:
            Factory.count += 1

    class Transport:
        def close(self) -> None:
            pass

    async def go() -> float:
        proto = AMIProtocol()
        proto.connection_made(Transport())
        proto.factory = Factory()
        proto.encoding = "utf-8"
        t0 = time.perf_counter()
        for i in range(0, len(blob), 65536):
            proto.data_received(blob[i : i + 65536])
        return Factory.count / (time.perf_counter() - t0)

    return asyncio.run(go())


def ours_in_memory(blob: bytes) -> tuple[float, float]:
    t0 = time.perf_counter()
    framer = AmiFramer(expect_banner=False)
    msgs = []
    for i in range(0, len(blob), 65536):
        msgs += [m for m in framer.feed(blob[i : i + 65536]) if isinstance(m, AmiMessage)]
    t1 = time.perf_counter()
    mirror = ChannelMirror("bench")
    for m in msgs:
        ev = normalize("bench", m)
        if ev is not None:
            mirror.apply(ev)
    t2 = time.perf_counter()
    return len(msgs) / (t1 - t0), len(msgs) / (t2 - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=4000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=5000.0, help="events/s for the latency run")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    stream = dialer_event_stream(args.calls)
    blob = b"".join(encode_message(m) for m in stream)
    paced_n = min(len(stream), int(args.rate * 6))
    paced = b"".join(encode_message(m) for m in stream[:paced_n])
    rates, p99s, bare, framer_only, in_memory = [], [], [], [], []
    for _ in range(args.runs):
        proc, port = start_server(blob, paced, args.rate)
        try:
            s = asyncio.run(full_path(port, len(stream), "BenchBlast"))
            rates.append(len(stream) / (s.t1 - s.t0))
            s = asyncio.run(full_path(port, paced_n, "BenchPaced"))
            lat = sorted(s.latencies_ns)
            p99s.append(lat[int(len(lat) * 0.99) - 1] / 1e6)
        finally:
            proc.terminate()
            proc.join()
        bare.append(panoramisk_bare(blob))
        f, m = ours_in_memory(blob)
        framer_only.append(f)
        in_memory.append(m)
    result = {
        "events": len(stream),
        "bytes": len(blob),
        "events_per_second": round(statistics.median(rates)),
        "p99_latency_ms": round(statistics.median(p99s), 3),
        "latency_rate_events_per_second": args.rate,
        "baseline_panoramisk_parse_events_per_second": round(statistics.median(bare)),
        "framer_only_events_per_second": round(statistics.median(framer_only)),
        "framer_normalize_mirror_in_memory_events_per_second": round(statistics.median(in_memory)),
        "runs": args.runs,
        "machine": machine(),
    }
    emit(result, args.json)


if __name__ == "__main__":
    main()
