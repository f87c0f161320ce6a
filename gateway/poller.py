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

Stopping is defined whatever a transport does: :meth:`Poller.shutdown` sets a stop flag that every
loop checks, cancels every meter task (again and again, since ``asyncio.wait_for`` inside a library may
swallow one cancellation on Python 3.11, CPython gh-86296) and closes the buses, so requests in flight
fail at once; it returns within its deadline either way and says what did not stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from gateway.blocks import plan_table
from gateway.config import GatewayConfig, MeterConfig, RtuBusConfig, TcpBusConfig
from gateway.decode import TableDecoder
from gateway.errors import BusUnavailable, DiscoveryError, MeterError, ModelMismatch
from gateway.identify import Identity, compare, identify, sunspec_identity
from gateway.measurements import Measurement
from gateway.models import get_model
from gateway.plausibility import PlausibilityChecker
from gateway.register_map import MeterModel, RegisterMap, RegisterRange
from gateway.sample import MeterSample
from gateway.sunspec_discovery import ReadFn, SunSpecDevice, discover
from gateway.telemetry import TelemetrySettings
from gateway.transport import Bus, RtuBus, TcpBus, is_transient, words
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
# What a signed reading holds: read at every poll; the rest of a table only every values_interval.
_SIGNED = (Measurement.IMPORT_ENERGY, Measurement.EXPORT_ENERGY, Measurement.POWER_TOTAL)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def _next_slot(previous: float, period: float, now: float, *, aligned: bool) -> float:
    """When the cycle after the one due at ``previous`` is due: one period later, or -- ``aligned`` --
    at the next multiple of ``period`` on the loop clock (so meters with the same interval start
    together; the first gap after start-up or an overrun is then shorter). ``now`` when that has
    already passed: an overrun cycle starts the next at once, never a burst of catch-up polls."""
    due = (math.floor(previous / period + 1e-9) + 1) * period if aligned else previous + period
    return due if due > now else now


class MeterState(enum.Enum):
    UNKNOWN = "unknown"  # not polled yet
    ONLINE = "online"
    OFFLINE = "offline"
    REFUSED = "refused"  # the device reports another model than configured (identify = "refuse")


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
    identify: str = "refuse"  # "refuse", "flag" or "off" (see gateway.config.MeterConfig)
    # Seconds between polls that read every measurement; the others read only the signed fields
    # (gateway.config.MeterConfig.values_interval). 0: every poll reads everything.
    values_interval: float = 0.0

    @classmethod
    def from_config(
        cls, meter: MeterConfig, bus: RtuBusConfig | TcpBusConfig, telemetry: TelemetrySettings | None = None
    ) -> MeterSpec:
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
            identify=meter.identify,
            values_interval=meter.effective_values_interval(telemetry or TelemetrySettings()),
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
    identity: Identity | None = None  # what the device said it is, at the last contact
    identity_problem: str | None = None  # why that contradicts the configuration (refused or flagged)


@dataclass(frozen=True)
class PollResult:
    """One meter's outcome of :meth:`Poller.poll_once`: a sample, or the error that prevented one."""

    meter_id: str
    model: str
    sample: MeterSample | None
    error: MeterError | None
    identity: Identity | None = None
    identity_problem: str | None = None

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
    return TcpBus(
        config.name,
        config.host,
        config.port,
        connect_timeout=config.connect_timeout,
        max_connections=config.max_connections,
        pipeline=config.pipeline,
    )


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
    """One meter: its identity, table (resolved by discovery for SunSpec), read plan, plausibility
    state and counters.  :meth:`poll` is one cycle; :meth:`run` is the interval loop."""

    def __init__(
        self,
        spec: MeterSpec,
        bus: Bus,
        *,
        clock_source: ClockSource | Callable[[], ClockSource] = ClockSource.UNSYNCED,
        now_ms: Callable[[], int] = wall_clock_ms,
        stopping: Callable[[], bool] = lambda: False,
        claim_serial: Callable[[MeterPoller, str], str | None] = lambda meter, serial: None,
    ) -> None:
        self.spec = spec
        self.bus = bus
        # A callable (gateway.clock.SystemClockSource) is asked at every poll: NTP may sync after boot.
        self.clock_source: Callable[[], ClockSource] = (
            clock_source if callable(clock_source) else lambda: clock_source
        )
        self.now_ms = now_ms
        self._stopping = stopping
        self._claim_serial = claim_serial
        self.checker = PlausibilityChecker(rated_power_w=spec.rated_power_w or spec.model.rated_power_w)
        self._counters = _Counters()
        self._table: RegisterMap | None = None
        self._plan: list[RegisterRange] | None = None
        self._decoder: TableDecoder | None = None
        # The signed fields alone (None when they are the whole table), read between full polls.
        self._core_plan: list[RegisterRange] | None = None
        self._core_decoder: TableDecoder | None = None
        self._full_due = -math.inf  # loop time of the next poll that reads everything
        self._values: dict[str, float] = {}  # the last full poll's values
        self._sunspec: SunSpecDevice | None = None
        self._identity: Identity | None = None
        self._identity_problem: str | None = None
        self._identified = spec.identify == "off"
        self._identity_logged: str | None = None
        if spec.model.table is not None:
            self._set_table(spec.model.table)

    # -- reading ---------------------------------------------------------------------------------

    def _set_table(self, table: RegisterMap) -> None:
        if self.spec.measurements is not None:
            wanted = [m for m in self.spec.measurements if m in table]
            table = table.select(wanted)
        self._table = table
        self._plan = plan_table(table)
        self._decoder = TableDecoder(table, self._plan)
        core = [m for m in _SIGNED if m in table]
        core_table = table.select(core)
        if core and len(core_table.fields) < len(table.fields):
            self._core_plan = plan_table(core_table)
            self._core_decoder = TableDecoder(core_table, self._core_plan)
        else:
            self._core_plan = self._core_decoder = None
        self._full_due = -math.inf
        self._values = {}

    async def _read_bytes(
        self, request: RegisterRange, *, attempts: int, deadline: float, failed: MeterError | None = None
    ) -> bytes:
        """One request with retries and backoff, never past ``deadline`` (loop time) and never once
        the gateway is stopping. The first attempt is the common case and costs no retry machinery;
        ``failed`` is a first attempt that was already made (and failed) elsewhere."""
        timeout = self.spec.response_timeout
        loop = asyncio.get_running_loop()
        if failed is None:
            # A meter that is failing (or retrying) waits behind healthy ones on a shared line or connection.
            try:
                return await self.bus.read_bytes(
                    self.spec.unit,
                    request,
                    response_timeout=timeout,
                    priority=1 if self._counters.consecutive_failures else 0,
                )
            except MeterError as exc:
                failed = exc
        attempt = 1
        while True:
            # Give up on a permanent error, after the last attempt, when another attempt could not finish
            # before the deadline, or when the gateway is stopping; the error itself is what the caller sees.
            if not is_transient(failed) or attempt >= attempts or self._stopping() or loop.time() + timeout > deadline:
                raise failed
            await asyncio.sleep(min(_BACKOFF_MAX, _BACKOFF_FIRST * 2 ** (attempt - 1)))
            attempt += 1
            try:
                return await self.bus.read_bytes(self.spec.unit, request, response_timeout=timeout, priority=1)
            except MeterError as exc:
                failed = exc

    async def _read_plan(self, plan: list[RegisterRange], *, attempts: int, deadline: float) -> list[bytes]:
        """Every request of a cycle (all in flight at once where the bus pipelines), each failed one
        retried as :meth:`_read_bytes` would."""
        results = await self.bus.read_many_bytes(
            self.spec.unit,
            plan,
            response_timeout=self.spec.response_timeout,
            priority=1 if self._counters.consecutive_failures else 0,
        )
        payloads: list[bytes] = []
        for request, result in zip(plan, results, strict=True):
            if isinstance(result, bytes):
                payloads.append(result)
            else:
                payloads.append(await self._read_bytes(request, attempts=attempts, deadline=deadline, failed=result))
        return payloads

    def _reader(self, *, attempts: int, deadline: float) -> ReadFn:
        async def read(request: RegisterRange) -> list[int]:
            return words(await self._read_bytes(request, attempts=attempts, deadline=deadline))

        return read

    async def poll(self, *, attempts: int | None = None, budget: float | None = None) -> MeterSample:
        """One full cycle: identity (at first contact), every planned request, decoded and checked.
        Raises :class:`MeterError`."""
        loop = asyncio.get_running_loop()
        attempts = self.spec.retries + 1 if attempts is None else attempts
        deadline = loop.time() + (self.spec.interval if budget is None else budget)
        if not self._identified:
            await self._identify(self._reader(attempts=attempts, deadline=deadline))
        if self._table is None:
            await self._discover(self._reader(attempts=attempts, deadline=deadline))
        assert self._plan is not None and self._decoder is not None
        started = loop.time()
        full = self._core_plan is None or started >= self._full_due
        plan, decoder = (self._plan, self._decoder) if full else (self._core_plan, self._core_decoder)
        assert plan is not None and decoder is not None
        payloads = await self._read_plan(plan, attempts=attempts, deadline=deadline)
        # The reading's time is when its last block arrived (a cycle spans well under a second).
        timestamp_ms = self.now_ms()
        values, exact = decoder.decode(payloads)
        verdict = self.checker.check_decoded(values, exact, timestamp_ms)
        if full:
            self._values = values
            # Half a poll early: the full read lands on the poll nearest the due time, not the one after.
            self._full_due = started + self.spec.values_interval - self.spec.interval / 2
        else:
            values = {**self._values, **values}
        problems = verdict.problems
        if self._identity_problem is not None:  # identify = "flag": read, but never minted from
            problems = (f"model mismatch: {self._identity_problem}", *problems)
        return MeterSample(
            meter_id=self.spec.meter_id,
            timestamp_ms=timestamp_ms,
            import_wh=verdict.import_wh,
            export_wh=verdict.export_wh,
            power_w=verdict.power_w,
            clock=self.clock_source(),
            meter_error=bool(problems),
            problems=problems,
            values=values,
            complete=full,
        )

    async def _identify(self, read: ReadFn) -> None:
        spec = self.spec
        if spec.model.needs_discovery:
            # Discovery walks the model chain anyway; the common model in it says who made the device.
            try:
                if self._sunspec is None:
                    await self._discover(read)
                assert self._sunspec is not None
                found = await sunspec_identity(read, self._sunspec.models)
            except DiscoveryError as failed:
                found = await identify(read, bus=self.bus.name, unit=spec.unit)
                if compare(spec.model.key, found) is None:
                    raise failed from None  # not a contradiction, just no SunSpec meter: say that
        else:
            found = await identify(read, bus=self.bus.name, unit=spec.unit)
        problem = compare(spec.model.key, found)
        if problem is None and found.serial:
            other = self._claim_serial(self, found.serial)
            if other is not None:
                problem = (
                    f"the device reports serial {found.serial}, like meter {other} on the same bus: this endpoint "
                    "answers every unit id (it ignores the unit id), so both are the same device"
                )
        self._identity, self._identity_problem, self._identified = found, problem, True
        where = f"meter {spec.meter_id} (bus {spec.bus} unit {spec.unit})"
        if problem is None:
            if found.kind == "unknown":
                if self._identity_logged != "unconfirmed":
                    log.warning("%s: %s; reading it as %s, unconfirmed", where, found.describe(), spec.model.key)
                self._identity_logged = "unconfirmed"
            else:
                log.info("%s: %s", where, found.describe())
                self._identity_logged = None
            return
        if self._identity_logged != problem:
            action = (
                'not reading it (identify = "refuse"); correct the model, or set identify = "flag" to read it '
                "with every reading flagged"
                if spec.identify == "refuse"
                else 'reading it with every reading flagged meter_error (identify = "flag")'
            )
            log.error("%s: %s: %s", where, problem, action)
            self._identity_logged = problem
        if spec.identify == "refuse":
            self._identified = False  # ask again at the next probe: the meter may be replaced
            raise ModelMismatch(problem, bus=self.bus.name, unit=spec.unit)

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
        """One cheap request, no retries: does the meter answer at all?  (For offline meters.)  A refused
        meter is asked again what it is."""
        loop = asyncio.get_running_loop()
        read_once = self._reader(attempts=1, deadline=loop.time() + self.spec.response_timeout * 2)
        if self.spec.model.needs_discovery:
            # It may have been replaced or reconfigured while away: discover afresh (marker first).
            self._table = self._plan = self._decoder = self._sunspec = None
            if not self._identified:
                await self._identify(read_once)  # discovers, and reads the common model
            else:
                await self._discover(read_once)
            return
        if not self._identified:
            await self._identify(read_once)  # its first request answered: that was the probe
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
        elif c.state is MeterState.REFUSED:
            log.info("meter %s: the device now reports the configured model %s", self.spec.meter_id,
                     self.spec.model.key)
        c.state = MeterState.ONLINE
        c.polls += 1
        c.successes += 1
        c.consecutive_failures = 0
        c.last_success_ms = sample.timestamp_ms
        c.last_sample = sample
        if sample.meter_error:
            c.flagged += 1
            if self._identity_problem is None or len(sample.problems) > 1:
                log.warning("meter %s: implausible values: %s", self.spec.meter_id, "; ".join(sample.problems))

    def record_failure(self, exc: MeterError) -> None:
        c = self._counters
        c.polls += 1
        c.failures += 1
        c.consecutive_failures += 1
        c.last_error = str(exc)
        c.last_failure_ms = self.now_ms()
        if isinstance(exc, ModelMismatch):
            c.state = MeterState.REFUSED  # logged once by _identify
        elif c.state is MeterState.OFFLINE:
            log.debug("meter %s still offline: %s", self.spec.meter_id, exc)
        elif c.consecutive_failures >= self.spec.offline_after:
            c.state = MeterState.OFFLINE
            if self.spec.identify != "off":
                self._identified = False  # whatever answers when it is back may be another device
            log.error(
                "meter %s is offline after %d failed polls (probing every %g s): %s",
                self.spec.meter_id,
                c.consecutive_failures,
                self.spec.offline_interval,
                exc,
            )
        elif isinstance(exc, BusUnavailable) and not exc.transient:
            log.debug("meter %s: poll failed: %s", self.spec.meter_id, exc)  # the bus has said so, once
        else:
            log.warning("meter %s: poll failed: %s", self.spec.meter_id, exc)

    @property
    def state(self) -> MeterState:
        return self._counters.state

    @property
    def identity(self) -> Identity | None:
        return self._identity

    @property
    def identity_problem(self) -> str | None:
        return self._identity_problem

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
            identity=self._identity,
            identity_problem=self._identity_problem,
        )

    # -- the loop ----------------------------------------------------------------------------------

    async def poll_and_record(self) -> MeterSample | None:
        try:
            if self.state in (MeterState.OFFLINE, MeterState.REFUSED):
                await self.probe()
            sample = await self.poll()
        except MeterError as exc:
            if self._stopping():
                return None  # the bus was closed under us: not the meter's failure
            self.record_failure(exc)
            return None
        self.record_success(sample)
        return sample

    async def run(self, sink: asyncio.Queue[MeterSample] | Callable[[MeterSample], None]) -> None:
        """Poll every ``interval`` (every ``offline_interval`` while offline or refused) until cancelled
        or the poller stops, handing each sample to ``sink`` (a queue, or a function called at once).

        Slots are fixed-rate. On a TCP bus they are also aligned to multiples of the period on the loop's
        clock, so every meter with the same interval starts its cycle in the same instant: one timer
        wake-up for all of them instead of one each (a wake-up costs a small machine far more than the
        work it wakes for). On an RS-485 line they are not: meters starting together would only queue
        for the line, and the readings' spacing would jitter. A cycle that overran its slot starts the
        next one at once (never a burst of catch-up polls)."""
        loop = asyncio.get_running_loop()
        deliver = sink if callable(sink) else None
        queue = None if callable(sink) else sink
        due = loop.time()  # the first poll at once
        while not self._stopping():
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                if self._stopping():
                    return
            sample = await self.poll_and_record()
            if sample is not None:
                if deliver is not None:
                    deliver(sample)
                elif queue is not None:
                    await queue.put(sample)
            waiting = self.state in (MeterState.OFFLINE, MeterState.REFUSED)
            period = self.spec.offline_interval if waiting else self.spec.interval
            # Probes of an offline meter are not aligned: aligned to a 30 s grid, the first probe could come a
            # moment after the meter went offline instead of offline_interval later.
            due = _next_slot(due, period, loop.time(), aligned=self.bus.aligned_slots and not waiting)


class Poller:
    """All buses and meters.  Use as ``async with``: exit closes every bus client.

    Typical use (the daemon)::

        config = load_config(path)
        async with Poller.from_config(config) as poller:
            async for sample in poller.samples():   # closing the iterator stops polling, within a deadline
                ...

    or ``task = asyncio.create_task(poller.run(queue))`` and :meth:`shutdown` to stop.
    """

    def __init__(
        self,
        buses: Sequence[Bus],
        meters: Sequence[MeterSpec],
        *,
        clock_source: ClockSource | Callable[[], ClockSource] = ClockSource.UNSYNCED,
        now_ms: Callable[[], int] = wall_clock_ms,
        stop_within_s: float = 3.0,
    ) -> None:
        by_name = {b.name: b for b in buses}
        if len(by_name) != len(buses):
            raise ValueError("bus names must be unique")
        self._buses = list(buses)
        self._meters: dict[str, MeterPoller] = {}
        self._serials: dict[tuple[str, str], str] = {}
        self._stop = False
        self.stop_within_s = stop_within_s
        for spec in meters:
            if spec.meter_id in self._meters:
                raise ValueError(f"meter id {spec.meter_id!r} appears twice")
            bus = by_name.get(spec.bus)
            if bus is None:
                raise ValueError(f"meter {spec.meter_id}: no bus named {spec.bus!r}")
            self._meters[spec.meter_id] = MeterPoller(
                spec,
                bus,
                clock_source=clock_source,
                now_ms=now_ms,
                stopping=self.stopping,
                claim_serial=self._claim_serial,
            )
        self._tasks: set[asyncio.Task[None]] = set()
        self._stack: AsyncExitStack | None = None
        self._running = False

    @classmethod
    def from_config(
        cls, config: GatewayConfig, *, clock_source: ClockSource | Callable[[], ClockSource] = ClockSource.UNSYNCED
    ) -> Poller:
        buses = [build_bus(b) for b in config.bus]
        meters = [MeterSpec.from_config(m, config.bus_by_name(m.bus), config.telemetry) for m in config.meter]
        return cls(buses, meters, clock_source=clock_source)

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            for bus in self._buses:
                await stack.enter_async_context(bus)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None

    def _claim_serial(self, meter: MeterPoller, serial: str) -> str | None:
        """Register ``serial`` for ``meter``; the meter that already holds it on the same bus, if any."""
        key = (meter.spec.bus, serial)
        holder = self._serials.setdefault(key, meter.spec.meter_id)
        return None if holder == meter.spec.meter_id else holder

    @property
    def buses(self) -> list[Bus]:
        return list(self._buses)

    def meter(self, meter_id: str) -> MeterPoller:
        return self._meters[meter_id]

    def status(self) -> list[MeterStatus]:
        return [m.status() for m in self._meters.values()]

    def stopping(self) -> bool:
        return self._stop

    def stop(self) -> None:
        """Ask every meter loop to end (idempotent; call again to cancel again)."""
        self._stop = True
        for task in list(self._tasks):
            task.cancel()

    async def shutdown(self, runner: asyncio.Task[None] | None = None, *, within: float | None = None) -> bool:
        """Stop polling within ``within`` seconds (default ``stop_within_s``): stop flag, cancellation
        repeated every 0.2 s, buses closed so requests in flight end at once. True when every poll task
        has ended; otherwise the stragglers are logged and left behind (the caller exits anyway)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.stop_within_s if within is None else within)
        self.stop()
        if runner is not None:
            runner.cancel()
        for bus in self._buses:
            with contextlib.suppress(Exception):
                await bus.close()
        while True:
            alive = [t for t in self._tasks if not t.done()]
            if runner is not None and not runner.done():
                alive.append(runner)
            remaining = deadline - loop.time()
            if not alive or remaining <= 0:
                break
            await asyncio.wait(alive, timeout=min(0.2, remaining))
            self.stop()  # again: a cancellation may have been swallowed on its way in
            if runner is not None and not runner.done() and not self._tasks:
                runner.cancel()
        if alive:
            log.error(
                "polling did not stop within %g s (%s still running); going on without it",
                self.stop_within_s if within is None else within,
                ", ".join(sorted(t.get_name() for t in alive)),
            )
            return False
        return True

    async def run(self, sink: asyncio.Queue[MeterSample] | Callable[[MeterSample], None]) -> None:
        """Poll until cancelled or stopped, putting samples into the caller's ``sink``: a queue (a
        bounded one slows polling of a meter whose samples are not taken: backpressure, no loss) or a
        function that takes each sample at once and never blocks (the daemon's service)."""
        if self._running:
            raise RuntimeError("Poller.run is already running")
        self._running = True
        try:
            async with asyncio.TaskGroup() as tg:
                for meter in self._meters.values():
                    task = tg.create_task(meter.run(sink), name=f"gateway-meter:{meter.spec.meter_id}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            self._running = False

    async def samples(self, maxsize: int = 0) -> AsyncIterator[MeterSample]:
        """Run the poller and yield its samples (an ``AsyncIterable`` for consumers that iterate).
        Cancelling the consumer, or closing the iterator (``contextlib.aclosing``), stops polling within
        :attr:`stop_within_s`; an unexpected error in the poller is raised here."""
        queue: asyncio.Queue[MeterSample] = asyncio.Queue(maxsize)
        runner = asyncio.create_task(self.run(queue), name="gateway-poller")
        try:
            while True:
                if not queue.empty():
                    yield queue.get_nowait()
                    continue
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
            await self.shutdown(runner)

    async def poll_once(self) -> list[PollResult]:
        """Every meter once (with its retries), concurrently where the buses allow; results in
        configuration order.  Updates the same status counters as :meth:`run`."""

        async def one(meter: MeterPoller) -> PollResult:
            try:
                sample = await meter.poll()
            except MeterError as exc:
                meter.record_failure(exc)
                return PollResult(meter.spec.meter_id, meter.spec.model.key, None, exc, meter.identity,
                                  meter.identity_problem)
            meter.record_success(sample)
            return PollResult(meter.spec.meter_id, meter.spec.model.key, sample, None, meter.identity,
                              meter.identity_problem)

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(m)) for m in self._meters.values()]
        return [t.result() for t in tasks]
