"""One Modbus TCP endpoint, many unit ids behind it: one shared connection, observed from the server side.

The simulated endpoint behaves like a Modbus TCP <-> RS-485 converter that accepts a single client
(a second connection is closed at once and counted). 20 live meters and one dead unit id are polled
through it: every live meter on schedule, the dead one costing the others no more than its own timeout.
"""

from __future__ import annotations

import asyncio

import pytest
from gwtest_helpers import gaps_s, run_for, spec
from meter_sim.meter import SimMeter
from meter_sim.server import serve_tcp

from gateway.poller import MeterState, Poller
from gateway.transport import TcpBus

pytestmark = [pytest.mark.modbus, pytest.mark.timeout(60)]

LIVE = list(range(1, 21))
DEAD = 21
INTERVAL = 1.0
DEAD_TIMEOUT = 0.3


def _specs() -> list:  # type: ignore[type-arg]
    specs = [spec(f"m{u}", "sdm630" if u % 2 else "sdm120", u, "converter", interval=INTERVAL, response_timeout=1.0)
             for u in LIVE]
    specs.append(spec("gone", "sdm630", DEAD, "converter", interval=INTERVAL, response_timeout=DEAD_TIMEOUT,
                      retries=1, offline_after=2, offline_interval=2.0))
    return specs


@pytest.mark.parametrize("pipeline", [1, 8])
async def test_twenty_meters_and_a_dead_unit_through_one_connection(pipeline: int) -> None:
    meters = [SimMeter("sdm630" if u % 2 else "sdm120", u) for u in LIVE]
    async with serve_tcp(meters, max_connections=1) as server:
        bus = TcpBus("converter", "127.0.0.1", server.port, pipeline=pipeline)
        async with Poller([bus], _specs()) as poller:
            samples = await run_for(poller, 5.4)
            status = {s.meter_id: s for s in poller.status()}
            assert bus.connections == 1
        # Observed from the server side: one connection, ever; none refused.
        assert (server.connections_accepted, server.connections_refused, server.peak_connections) == (1, 0, 1)
    # The dead unit may hold the connection for its own timeout (one request at a time; its retries wait
    # behind healthy meters), but not longer: a live meter's readings are at most one interval plus that
    # apart. Pipelined, it holds nobody up at all.
    slack = 0.15
    stall = DEAD_TIMEOUT if pipeline == 1 else 0.0
    for u in LIVE:
        got = samples.get(f"m{u}", [])
        assert len(got) >= 5, (u, len(got))
        assert all(not s.meter_error for s in got), u
        assert max(gaps_s(got)) < INTERVAL + stall + slack, (u, gaps_s(got))
        assert status[f"m{u}"].state is MeterState.ONLINE and status[f"m{u}"].failures == 0
    assert "gone" not in samples
    assert status["gone"].state is MeterState.OFFLINE


async def test_a_pool_of_two_never_opens_a_third() -> None:
    meters = [SimMeter("sdm120", u) for u in LIVE]
    async with serve_tcp(meters, max_connections=2) as server:
        bus = TcpBus("converter", "127.0.0.1", server.port, max_connections=2)
        specs = [spec(f"m{u}", "sdm120", u, "converter", interval=0.5, response_timeout=1.0) for u in LIVE]
        async with Poller([bus], specs) as poller:
            samples = await run_for(poller, 2.2)
    assert server.peak_connections <= 2 and server.connections_refused == 0
    assert all(len(samples[f"m{u}"]) >= 4 for u in LIVE)


async def test_late_and_unsolicited_answers_go_to_nobody() -> None:
    """A late answer (after its request timed out) and an unsolicited frame carry transaction ids no
    request waits for: counted, dropped, never taken for another meter's answer."""
    meters = [SimMeter("sdm120", 1), SimMeter("sdm120", 2), SimMeter("sdm630", 3)]
    for m in meters:
        m.pause()
    meters[1].faults.delay_s = 0.35  # answers after the 0.2 s timeout
    meters[2].faults.unsolicited = True
    async with serve_tcp(meters, max_connections=1) as server:
        bus = TcpBus("converter", "127.0.0.1", server.port)
        specs = [
            spec("good", "sdm120", 1, "converter", interval=0.3, response_timeout=0.5),
            spec("late", "sdm120", 2, "converter", interval=0.3, response_timeout=0.2, retries=0),
            spec("chatty", "sdm630", 3, "converter", interval=0.3, response_timeout=0.5),
        ]
        async with Poller([bus], specs) as poller:
            samples = await run_for(poller, 2.0)
            stray = bus.stray_answers
        await asyncio.sleep(0)
    assert stray > 0
    for name, meter in (("good", meters[0]), ("chatty", meters[2])):
        got = samples[name]
        assert len(got) >= 4
        # Each reading is its own meter's (the paused meters show different powers): a stray frame was
        # never decoded as someone else's answer.
        assert {s.power_w for s in got} == {round(meter.truth()["power_w"])}
        assert all(not s.meter_error for s in got)
    assert round(meters[0].truth()["power_w"]) != round(meters[2].truth()["power_w"])
    assert "late" not in samples
