"""Poll meters on their intervals and hand out :class:`~gateway.sample.MeterSample` values.

Ownership and flow::

    Poller.run(sink)                 one TaskGroup, cancelled by the caller to stop
      └── bus task (one per bus)     owns nothing but its meters' tasks
            └── meter task           interval loop: read blocks -> decode -> plausibility -> sink

Frames on one RS-485 line are serialised by the bus (:mod:`gateway.transport`); every *request* takes
the bus lock separately, so while one meter waits out a retry backoff the others use the line, and a
meter that is failing asks with a lower priority, so it only gets the line when no healthy meter is
waiting.  The one delay physics leaves: a request already on the wire cannot be recalled, so a healthy
meter can wait for at most one timeout of a failing one.  TCP meters each have their own connection
and run concurrently.

A meter's cycle has a time budget of one interval: retries (exponential backoff) stop when the next
attempt could not finish within it.  The retry loop is written out rather than built from tenacity's
``AsyncRetrying``: that made a retry object, a thread-local, and a future with a condition variable
per request — for 100 meters about a megabyte of short-lived objects in flight at any moment, and
the C heap's high-water mark with it (issue 12).  After ``offline_after`` consecutive failed cycles a
meter is *offline*: logged at ERROR once, later failures at DEBUG, and it is probed only every
``offline_interval`` with a single cheap request (its model's probe register, or SunSpec discovery)
so a dead meter costs the bus one timeout per probe period.  Failure counters start at zero and are
visible in :meth:`Poller.status` for a status page.

Offline meters produce no samples (there is nothing to sign).  Implausible values produce samples
with ``meter_error=True`` and ``problems`` (see :mod:`gateway.plausibility`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from gateway.blocks import plan_table
from gateway.config import GatewayConfig, MeterConfig, RtuBusConfig, TcpBusConfig
from gateway.decode import RegisterImage, as_floats, decode_table
from gateway.errors import MeterError
from gateway.measurements import Measurement
from gateway.models import get_model
from gateway.plausibility import PlausibilityChecker
from gateway.register_map import MeterModel, RegisterMap, RegisterRange
from gateway.sample import MeterSample
from gateway.sunspec_discovery import ReadFn, SunSpecDevice, discover
from gateway.transport import Bus, RtuBus, TcpBus, is_transient
from gridtokenx.reading import ClockSource

__all__ = [
    "MeterPoller",
    "MeterSpec",
    "MeterState",
    "MeterStatus",
    "PollResult",
    "Poller",
    "build_bus",
]

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.05  # seconds before the first retry; doubles each time
_BACKOFF_MAX = 1.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class MeterState(enum.Enum):
    UNKNOWN = "unknown"  # not polled yet
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True)
class MeterSpec:
    """Everything needed to poll one meter, resolved from the configuration."""

    meter_id: str
    model: MeterModel
    unit: int
    bus: str
    interval: float = 10.0
    response_timeout: float = 0.6
    retries: int = 2
    offline_after: int = 3
    offline_interval: float = 30.0
    measurements: tuple[Measurement, ...] | None = None
    rated_power_w: int | None = None

    @classmethod
    def from_config(cls, meter: MeterConfig, bus: RtuBusConfig | TcpBusConfig) -> MeterSpec:
        return cls(
            meter_id=meter.id,
            model=get_model(meter.model),
            unit=meter.unit,
            bus=meter.bus,
            interval=meter.interval,
            response_timeout=meter.timeout if meter.timeout is not None else bus.timeout,
            retries=meter.retries,
            offline_after=meter.offline_after,
            offline_interval=meter.effective_offline_interval(),
            measurements=(
                None if meter.measurements is None else tuple(Measurement.by_name(m) for m in meter.measurements)
            ),
            rated_power_w=meter.max_power_w,
        )


@dataclass(frozen=True)
class MeterStatus:
    """A snapshot for status pages.  Counters start at zero when the gateway starts."""

    meter_id: str
    model: str
    bus: str
    unit: int
    state: MeterState
    polls: int
    successes: int
    failures: int
    consecutive_failures: int
    flagged: int
    last_error: str | None
    last_failure_ms: int | None
    last_success_ms: int | None
    last_sample: MeterSample | None
    requests_per_cycle: int | None
    sunspec_models: tuple[int, ...] | None


@dataclass(frozen=True)
class PollResult:
    """One meter's outcome of :meth:`Poller.poll_once`: a sample, or the error that prevented one."""

    meter_id: str
    model: str
    sample: MeterSample | None
    error: MeterError | None

    @property
    def ok(self) -> bool:
        return self.sample is not None


def build_bus(config: RtuBusConfig | TcpBusConfig) -> Bus:
    if isinstance(config, RtuBusConfig):
        return RtuBus(
            config.name,
            config.device,
            baudrate=config.baudrate,
            parity=config.parity,
            stopbits=config.stopbits,
            bytesize=config.bytesize,
            inter_frame_gap=config.inter_frame_gap,
            echo=config.echo,
            connect_timeout=config.connect_timeout,
        )
    return TcpBus(config.name, config.host, config.port, connect_timeout=config.connect_timeout)


@dataclass
class _Counters:
    state: MeterState = MeterState.UNKNOWN
    polls: int = 0
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    flagged: int = 0
    last_error: str | None = None
    last_failure_ms: int | None = None
    last_success_ms: int | None = None
    last_sample: MeterSample | None = None


class MeterPoller:
    """One meter: its table (resolved by discovery for SunSpec), read plan, plausibility state and
    counters.  :meth:`poll` is one cycle; :meth:`run` is the interval loop."""

    def __init__(
        self,
        spec: MeterSpec,
        bus: Bus,
        *,
        clock_source: ClockSource | Callable[[], ClockSource] = ClockSource.UNSYNCED,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.spec = spec
        self.bus = bus
        # A callable (gateway.clock.SystemClockSource) is asked at every poll: NTP may sync after boot.
        self.clock_source: Callable[[], ClockSource] = (
            clock_source if callable(clock_source) else lambda: clock_source
        )
        self.now_ms = now_ms
        self.checker = PlausibilityChecker(rated_power_w=spec.rated_power_w or spec.model.rated_power_w)
        self._counters = _Counters()
        self._table: RegisterMap | None = None
        self._plan: list[RegisterRange] | None = None
        self._sunspec: SunSpecDevice | None = None
        if spec.model.table is not None:
            self._set_table(spec.model.table)

    # -- reading ---------------------------------------------------------------------------------

    def _set_table(self, table: RegisterMap) -> None:
        if self.spec.measurements is not None:
            wanted = [m for m in self.spec.measurements if m in table]
            table = table.select(wanted)
        self._table = table
        self._plan = plan_table(table)

    async def _read(self, request: RegisterRange, *, attempts: int, deadline: float) -> list[int]:
        """One request with retries and backoff, never past ``deadline`` (loop time)."""
        timeout = self.spec.response_timeout
        loop = asyncio.get_running_loop()
        attempt = 1
        while True:
            # A meter that is failing (or retrying) waits behind healthy ones for a shared line.
            suspect = self._counters.consecutive_failures > 0 or attempt > 1
            try:
                return await self.bus.read(
                    self.spec.unit, request, response_timeout=timeout, priority=1 if suspect else 0
                )
            except Exception as exc:
                # Give up on a permanent error, after the last attempt, or when another attempt could
                # not finish before the deadline; the error itself is what the caller sees.
                if not is_transient(exc) or attempt >= attempts or loop.time() + timeout > deadline:
                    raise
            await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (attempt - 1)))
            attempt += 1

    async def poll(self, *, attempts: int | None = None, budget: float | None = None) -> MeterSample:
        """One full cycle: every planned request, decoded and checked.  Raises :class:`MeterError`."""
        loop = asyncio.get_running_loop()
        attempts = self.spec.retries + 1 if attempts is None else attempts
        deadline = loop.time() + (self.spec.interval if budget is None else budget)

        async def read(request: RegisterRange) -> list[int]:
            return await self._read(request, attempts=attempts, deadline=deadline)

        if self._table is None:
            await self._discover(read)
        assert self._table is not None and self._plan is not None
        image = RegisterImage()
        for request in self._plan:
            image.add(request, await read(request))
        # The reading's time is when its last block arrived (a cycle spans well under a second).
        timestamp_ms = self.now_ms()
        values = decode_table(self._table, image)
        verdict = self.checker.check(values, timestamp_ms)
        return MeterSample(
            meter_id=self.spec.meter_id,
            timestamp_ms=timestamp_ms,
            import_wh=verdict.import_wh,
            export_wh=verdict.export_wh,
            power_w=verdict.power_w,
            clock=self.clock_source(),
            meter_error=not verdict.ok,
            problems=verdict.problems,
            values=as_floats(values),
        )

    async def _discover(self, read: ReadFn) -> None:
        device = await discover(read, bus=self.bus.name, unit=self.spec.unit)
        self._sunspec = device
        self._set_table(device.table)
        log.info(
            "meter %s: SunSpec base %d, models %s, using model %d at %d",
            self.spec.meter_id,
            device.base,
            device.model_ids,
            device.meter.model_id,
            device.meter.address,
        )

    async def probe(self) -> None:
        """One cheap request, no retries: does the meter answer at all?  (For offline meters.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.spec.response_timeout * 2

        async def read_once(request: RegisterRange) -> list[int]:
            return await self._read(request, attempts=1, deadline=deadline)

        if self.spec.model.needs_discovery:
            # It may have been replaced or reconfigured while away: discover afresh (marker first).
            self._table = self._plan = self._sunspec = None
            await self._discover(read_once)
            return
        await read_once(self.spec.model.probe.registers)

    # -- bookkeeping -----------------------------------------------------------------------------

    def record_success(self, sample: MeterSample) -> None:
        c = self._counters
        if c.state is MeterState.OFFLINE:
            log.info(
                "meter %s (bus %s unit %d) is back online after %d failed polls",
                self.spec.meter_id,
                self.spec.bus,
                self.spec.unit,
                c.consecutive_failures,
            )
        c.state = MeterState.ONLINE
        c.polls += 1
        c.successes += 1
        c.consecutive_failures = 0
        c.last_success_ms = sample.timestamp_ms
        c.last_sample = sample
        if sample.meter_error:
            c.flagged += 1
            log.warning("meter %s: implausible values: %s", self.spec.meter_id, "; ".join(sample.problems))

    def record_failure(self, exc: MeterError) -> None:
        c = self._counters
        c.polls += 1
        c.failures += 1
        c.consecutive_failures += 1
        c.last_error = str(exc)
        c.last_failure_ms = self.now_ms()
        if c.state is MeterState.OFFLINE:
            log.debug("meter %s still offline: %s", self.spec.meter_id, exc)
        elif c.consecutive_failures >= self.spec.offline_after:
            c.state = MeterState.OFFLINE
            log.error(
                "meter %s is offline after %d failed polls (probing every %g s): %s",
                self.spec.meter_id,
                c.consecutive_failures,
                self.spec.offline_interval,
                exc,
            )
        else:
            log.warning("meter %s: poll failed: %s", self.spec.meter_id, exc)

    @property
    def state(self) -> MeterState:
        return self._counters.state

    def status(self) -> MeterStatus:
        c = self._counters
        return MeterStatus(
            meter_id=self.spec.meter_id,
            model=self.spec.model.key,
            bus=self.spec.bus,
            unit=self.spec.unit,
            state=c.state,
            polls=c.polls,
            successes=c.successes,
            failures=c.failures,
            consecutive_failures=c.consecutive_failures,
            flagged=c.flagged,
            last_error=c.last_error,
            last_failure_ms=c.last_failure_ms,
            last_success_ms=c.last_success_ms,
            last_sample=c.last_sample,
            requests_per_cycle=None if self._plan is None else len(self._plan),
            sunspec_models=None if self._sunspec is None else self._sunspec.model_ids,
        )

    # -- the loop ----------------------------------------------------------------------------------

    async def poll_and_record(self) -> MeterSample | None:
        try:
            if self.state is MeterState.OFFLINE:
                await self.probe()
            sample = await self.poll()
        except MeterError as exc:
            self.record_failure(exc)
            return None
        self.record_success(sample)
        return sample

    async def run(self, sink: asyncio.Queue[MeterSample]) -> None:
        """Poll every ``interval`` (every ``offline_interval`` while offline) until cancelled.
        Slots are fixed-rate; a cycle that overran its slot starts the next one at once (never a
        burst of catch-up polls) and the rate continues from there."""
        loop = asyncio.get_running_loop()
        next_due = loop.time()
        while True:
            delay = next_due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sample = await self.poll_and_record()
            if sample is not None:
                await sink.put(sample)
            period = self.spec.offline_interval if self.state is MeterState.OFFLINE else self.spec.interval
            next_due = max(next_due + period, loop.time())


@dataclass
class _BusGroup:
    bus: Bus
    meters: list[MeterPoller] = field(default_factory=list)


class Poller:
    """All buses and meters.  Use as ``async with``: exit closes every bus client.

    Typical use (the daemon)::

        config = load_config(path)
        queue: asyncio.Queue[MeterSample] = asyncio.Queue()
        async with Poller.from_config(config) as poller:
            task = asyncio.create_task(poller.run(queue))   # cancel to stop
            while True:
                sample = await queue.get()

    or ``async for sample in poller.samples(): ...``.
    """

    def __init__(
        self,
        buses: Sequence[Bus],
        meters: Sequence[MeterSpec],
        *,
        clock_source: ClockSource | Callable[[], ClockSource] = ClockSource.UNSYNCED,
        now_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        by_name = {b.name: _BusGroup(b) for b in buses}
        if len(by_name) != len(buses):
            raise ValueError("bus names must be unique")
        self._meters: dict[str, MeterPoller] = {}
        for spec in meters:
            if spec.meter_id in self._meters:
                raise ValueError(f"meter id {spec.meter_id!r} appears twice")
            group = by_name.get(spec.bus)
            if group is None:
                raise ValueError(f"meter {spec.meter_id}: no bus named {spec.bus!r}")
            poller = MeterPoller(spec, group.bus, clock_source=clock_source, now_ms=now_ms)
            group.meters.append(poller)
            self._meters[spec.meter_id] = poller
        self._groups = [g for g in by_name.values()]
        self._stack: AsyncExitStack | None = None
        self._running = False

    @classmethod
    def from_config(
        cls, config: GatewayConfig, *, clock_source: ClockSource | Callable[[], ClockSource] = ClockSource.UNSYNCED
    ) -> Poller:
        buses = [build_bus(b) for b in config.bus]
        meters = [MeterSpec.from_config(m, config.bus_by_name(m.bus)) for m in config.meter]
        return cls(buses, meters, clock_source=clock_source)

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            for group in self._groups:
                await stack.enter_async_context(group.bus)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    @property
    def buses(self) -> list[Bus]:
        return [g.bus for g in self._groups]

    def meter(self, meter_id: str) -> MeterPoller:
        return self._meters[meter_id]

    def status(self) -> list[MeterStatus]:
        return [m.status() for m in self._meters.values()]

    async def run(self, sink: asyncio.Queue[MeterSample]) -> None:
        """Poll until cancelled, putting samples into the caller's ``sink``.  A bounded sink slows
        polling of a meter whose samples are not taken (backpressure, no loss)."""
        if self._running:
            raise RuntimeError("Poller.run is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                for group in self._groups:
                    tg.create_task(self._run_bus(group, sink), name=f"gateway-bus:{group.bus.name}")
        finally:
            self._running = False

    async def _run_bus(self, group: _BusGroup, sink: asyncio.Queue[MeterSample]) -> None:
        async with asyncio.TaskGroup() as tg:
            for meter in group.meters:
                tg.create_task(meter.run(sink), name=f"gateway-meter:{meter.spec.meter_id}")

    async def samples(self, maxsize: int = 0) -> AsyncIterator[MeterSample]:
        """Run the poller and yield its samples (an ``AsyncIterable`` for consumers that iterate).
        Cancelling the consumer, or closing the iterator (``contextlib.aclosing``), stops polling; an
        unexpected error in the poller is raised here."""
        queue: asyncio.Queue[MeterSample] = asyncio.Queue(maxsize)
        runner = asyncio.create_task(self.run(queue), name="gateway-poller")
        try:
            while True:
                getter = asyncio.create_task(queue.get())
                try:
                    await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    getter.cancel()
                if getter.done() and not getter.cancelled():
                    yield getter.result()
                elif runner.done():
                    runner.result()  # raises what stopped the poller
                    return
        finally:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def poll_once(self) -> list[PollResult]:
        """Every meter once (with its retries), concurrently where the buses allow; results in
        configuration order.  Updates the same status counters as :meth:`run`."""

        async def one(meter: MeterPoller) -> PollResult:
            try:
                sample = await meter.poll()
            except MeterError as exc:
                meter.record_failure(exc)
                return PollResult(meter.spec.meter_id, meter.spec.model.key, None, exc)
            meter.record_success(sample)
            return PollResult(meter.spec.meter_id, meter.spec.model.key, sample, None)

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(m)) for m in self._meters.values()]
        return [t.result() for t in tasks]
