"""The clock-source bits follow the kernel's synchronisation state, re-checked as time passes."""

from __future__ import annotations

from gateway.clock import SystemClockSource, kernel_clock_synchronised
from gridtokenx.reading import ClockSource


def test_linux_answers_the_synchronisation_question() -> None:
    # The real syscall, unprivileged: a definite answer, never an exception or None on Linux.
    assert kernel_clock_synchronised() in (True, False)


def test_source_follows_synchronisation_and_is_cached_between_checks() -> None:
    answers = iter([False, True])
    now = [0.0]
    clock = SystemClockSource(recheck_s=60, probe=lambda: next(answers), monotonic=lambda: now[0])
    assert clock() is ClockSource.UNSYNCED
    now[0] = 59.0
    assert clock() is ClockSource.UNSYNCED  # cached: the probe is not asked again yet
    now[0] = 60.0
    assert clock() is ClockSource.NTP  # NTP synced since boot


def test_unavailable_kernel_answer_means_unsynced() -> None:
    clock = SystemClockSource(probe=lambda: None)
    assert clock() is ClockSource.UNSYNCED


async def test_each_poll_stamps_the_clock_source_current_at_that_moment() -> None:
    from gwtest_helpers import spec
    from meter_sim import SimMeter, serve_tcp

    from gateway.poller import MeterPoller
    from gateway.transport import TcpBus

    sources = iter([ClockSource.UNSYNCED, ClockSource.NTP])
    async with serve_tcp([SimMeter("sdm120", 1, speedup=0)]) as server:
        async with TcpBus("lan", "127.0.0.1", server.port) as bus:
            poller = MeterPoller(spec("m1", "sdm120", 1, "lan"), bus, clock_source=lambda: next(sources))
            first, second = await poller.poll(), await poller.poll()
    assert (first.clock, second.clock) == (ClockSource.UNSYNCED, ClockSource.NTP)
