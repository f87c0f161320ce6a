"""The buses meters hang off, and the rules for sharing them.

* RTU (RS-485): every meter on the wire shares one half-duplex line, so frames are serialised with a
  :class:`PriorityLock` and separated by the inter-frame gap (3.5 character times; fixed 1.75 ms above
  19200 baud as the Modbus serial line spec says). The client is pymodbus' serial client; pymodbus has
  its own lock, but it neither keeps a gap nor lets each request have its own timeout, so the bus does
  both.
* TCP: a ``tcp`` bus is one endpoint (host:port) -- typically a Modbus TCP <-> RS-485 converter with many
  unit ids behind it, and many converters accept only one to four connections. So the bus holds ONE
  connection (``max_connections``, default 1) shared by all its meters, requests on it serialised
  (``pipeline`` = 1, the default) or several outstanding at once, matched by transaction id
  (:mod:`gateway.modbus_tcp`). Like the RS-485 line, a connection is handed to healthy meters first, so a
  dead unit delays the others by at most one of its own timeouts. Meters that are really separate
  devices get separate ``[[bus]]`` entries.

Per-request timeouts belong to the meter (some need 600 ms) and count from sending: time spent waiting
for the line or connection is not the meter's fault. Retries are the poller's (pymodbus' own are off),
with backoff between requests, letting other meters use the bus meanwhile. A bus that cannot be opened
is logged once when that starts and once when it ends (by the bus, not by each of its meters), and
every pymodbus / OS error leaves this module as a :class:`gateway.errors.MeterError`.
"""

from __future__ import annotations

import abc
import asyncio
import heapq
import itertools
import logging
import os
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from gateway.errors import BadResponse, BusUnavailable, MeterError, MeterExceptionResponse, MeterTimeout
from gateway.modbus_tcp import ConnectionLost, ExceptionAnswer, ModbusTcpConnection, RequestFailed
from gateway.register_map import READ_HOLDING, READ_INPUT, RegisterRange

__all__ = ["Bus", "PriorityLock", "RtuBus", "TcpBus", "char_time", "is_transient", "rtu_inter_frame_gap"]

log = logging.getLogger(__name__)

# pymodbus uses its timeout for connecting and for responses; we impose our own on both, so its own
# must never fire first.
_PYMODBUS_TIMEOUT = 3600.0
_WORDS: dict[int, struct.Struct] = {}


def words(data: bytes) -> list[int]:
    """Big-endian 16-bit registers from the bytes of a read answer."""
    count = len(data) // 2
    layout = _WORDS.get(count)
    if layout is None:
        layout = _WORDS[count] = struct.Struct(f">{count}H")
    return list(layout.unpack(data))


def _os_reason(exc: OSError) -> str:
    """"connection refused" rather than "[Errno 111] Connect call failed ('10.0.0.5', 502)"."""
    return os.strerror(exc.errno).lower() if exc.errno else str(exc)


def char_time(baudrate: int, *, bits_per_char: int = 11) -> float:
    """Seconds one RTU character occupies on the wire (start + 8 data + parity/stop = 11 bits)."""
    return bits_per_char / baudrate


def rtu_inter_frame_gap(baudrate: int, *, bits_per_char: int = 11) -> float:
    """The silent interval t3.5 that separates RTU frames."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_time(baudrate, bits_per_char=bits_per_char)


class PriorityLock:
    """An asyncio lock (``capacity`` holders at once) whose waiters are served lowest ``priority``
    first, FIFO within a priority.

    A silent meter holds an RS-485 line (or a serialised TCP connection) for a whole timeout per attempt
    and nothing can shorten that (a late answer would collide with the next frame), but it need not jump
    the queue: meters that are failing ask with a lower priority, so healthy meters waiting always go
    first.
    """

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._held = 0
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def locked(self) -> bool:
        return self._held >= self.capacity

    @property
    def waiting(self) -> int:
        return sum(1 for _, _, f in self._waiters if not f.done())

    async def acquire(self, priority: int = 0) -> None:
        if self._held < self.capacity and not self._waiters:
            self._held += 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as we were cancelled: pass the lock on
            raise

    def has_waiters_before(self, priority: int) -> bool:
        """Whether someone with a lower priority number is waiting."""
        return any(p < priority and not f.done() for p, _, f in self._waiters)

    def release(self) -> None:
        if self._held <= 0:
            raise RuntimeError("PriorityLock is not locked")
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes directly; the count stays the same
                return
        self._held -= 1

    @asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class Bus(abc.ABC):
    """A place meters hang off. Use as ``async with``: enter opens (lazily), exit closes. ``read`` and
    ``read_bytes`` raise :class:`MeterError` subclasses only. ``requests`` counts requests sent, for
    status and benches. After :meth:`close` every read fails at once (the gateway is stopping)."""

    kind: str
    # Whether meters on this bus poll on a common grid (gateway.poller): worth it where they do not
    # share one slow line.
    aligned_slots = False

    def __init__(self, name: str, *, connect_timeout: float) -> None:
        self.name = name
        self.connect_timeout = connect_timeout
        self.requests = 0
        self.failures = 0
        self.closed = False
        self._down: str | None = None  # why the bus cannot be opened, while that lasts (logged once)

    async def __aenter__(self) -> Self:
        # Connecting is lazy (first request): a port that is missing now may appear later.
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def read_bytes(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> bytes:
        """The registers of ``request`` from ``unit`` as the answer's bytes (2 per register, big-endian),
        or a :class:`MeterError`. ``response_timeout`` counts from sending the request: time spent
        waiting for the bus is not the meter's fault. On a shared line or connection, requests with a
        lower ``priority`` number go first (0: healthy meter)."""

    async def read_many_bytes(
        self, unit: int, requests: Sequence[RegisterRange], *, response_timeout: float, priority: int = 0
    ) -> list[bytes | MeterError | None]:
        """Several requests to one unit (a meter's cycle). Each result is the answer's bytes, the
        MeterError of that request, or None when it was not tried. Here one after the other, stopping at
        the first failure; a pipelined TCP bus has them all in flight at once."""
        results: list[bytes | MeterError | None] = [None] * len(requests)
        for i, request in enumerate(requests):
            try:
                results[i] = await self.read_bytes(unit, request, response_timeout=response_timeout, priority=priority)
            except MeterError as exc:
                results[i] = exc
                break
        return results

    async def read(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> list[int]:
        """The registers of ``request`` from ``unit`` as 16-bit integers."""
        return words(await self.read_bytes(unit, request, response_timeout=response_timeout, priority=priority))

    def describe(self) -> str:
        return self.name

    def status(self) -> dict[str, Any]:
        """Figures for the status page."""
        return {"name": self.name, "kind": self.kind, "where": self.describe(), "state": self.state,
                "requests": self.requests, "failures": self.failures, "error": self._down}

    @property
    def state(self) -> str:
        return "closed" if self.closed else ("down" if self._down else "up")

    def _closed_error(self, unit: int | None) -> BusUnavailable:
        error = BusUnavailable("bus closed: the gateway is stopping", bus=self.name, unit=unit)
        error.transient = False
        return error

    def _unavailable(self, reason: str) -> BusUnavailable:
        """The bus cannot be opened: log it once (not once per meter), raise for the caller."""
        if self._down != reason:
            log.warning("bus %s: cannot open %s: %s", self.name, self.describe(), reason)
        self._down = reason
        error = BusUnavailable(f"cannot open {self.describe()}: {reason}", bus=self.name)
        # A port or host that just refused will not be back within this cycle's retries; the poller
        # tries again next cycle (or next probe, once the meters are offline).
        error.transient = False
        return error

    def _opened(self) -> None:
        if self._down is not None:
            log.info("bus %s: %s is open again", self.name, self.describe())
        self._down = None

    def _check_function(self, unit: int, request: RegisterRange) -> None:
        if request.function_code not in (READ_INPUT, READ_HOLDING):
            raise BadResponse(
                f"function code {request.function_code} is not a register read",
                bus=self.name,
                unit=unit,
                address=request.address,
            )


class RtuBus(Bus):
    """An RS-485 line: one serial client, one lock, a silent gap between frames."""

    kind = "rtu"

    def __init__(
        self,
        name: str,
        device: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        inter_frame_gap: float | None = None,
        echo: bool = False,
        connect_timeout: float = 3.0,
    ) -> None:
        super().__init__(name, connect_timeout=connect_timeout)
        self.device = device
        self.baudrate = baudrate
        self.parity = parity
        self.stopbits = stopbits
        self.bytesize = bytesize
        self.bits_per_char = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
        self.inter_frame_gap = (
            inter_frame_gap
            if inter_frame_gap is not None
            else rtu_inter_frame_gap(baudrate, bits_per_char=self.bits_per_char)
        )
        self.echo = echo
        self._lock = PriorityLock()
        self._client: Any = None
        self._last_frame_end = 0.0

    def describe(self) -> str:
        return f"{self.device} at {self.baudrate} baud"

    def _get_client(self) -> Any:
        if self._client is None:
            # Imported here: a gateway without RS-485 buses never loads pymodbus' client stack.
            from pymodbus.client import AsyncModbusSerialClient

            # Created on first use, inside the running loop (pymodbus makes futures at construction).
            self._client = AsyncModbusSerialClient(
                self.device,
                baudrate=self.baudrate,
                parity=self.parity,
                stopbits=self.stopbits,
                bytesize=self.bytesize,
                handle_local_echo=self.echo,
                timeout=_PYMODBUS_TIMEOUT,
                retries=0,
                reconnect_delay=0,  # reconnecting is the poller's decision, made per cycle
                name=self.name,
            )
        return self._client

    async def _connect(self, client: Any) -> None:
        if client.connected:
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                ok = await client.connect()
        except TimeoutError:
            ok = False
            reason = f"no connection within {self.connect_timeout:g} s"
        except OSError as exc:
            client.close()
            raise self._unavailable(_os_reason(exc)) from exc
        else:
            reason = "the port could not be opened"
        if not ok:
            client.close()
            raise self._unavailable(reason)
        self._opened()

    async def read_bytes(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> bytes:
        self._check_function(unit, request)
        loop = asyncio.get_running_loop()
        while True:
            if self.closed:
                raise self._closed_error(unit)
            await self._lock.acquire(priority)
            try:
                # The silence the line needs between frames, which we owe it anyway...
                wait = self._last_frame_end + self.inter_frame_gap - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                # ...is also the moment a healthy meter between two requests of its cycle asks again:
                # a failing meter steps back rather than hold the line for a whole timeout.
                if priority > 0 and self._lock.has_waiters_before(priority):
                    continue
                if self.closed:
                    raise self._closed_error(unit)
                client = self._get_client()
                await self._connect(client)
                try:
                    registers = await self._request(client, unit, request, response_timeout)
                finally:
                    # The gap counts from the end of the answer, or of our waiting for one.
                    self._last_frame_end = loop.time()
                return struct.pack(f">{len(registers)}H", *registers)
            finally:
                self._lock.release()

    async def _request(self, client: Any, unit: int, request: RegisterRange, response_timeout: float) -> list[int]:
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
        from pymodbus.pdu import ExceptionResponse

        call = client.read_input_registers if request.function_code == READ_INPUT else client.read_holding_registers
        where: dict[str, Any] = {"bus": self.name, "unit": unit, "address": request.address}
        self.requests += 1
        try:
            async with asyncio.timeout(response_timeout):
                response = await call(request.address, count=request.count, device_id=unit)
        except TimeoutError as exc:
            self.failures += 1
            raise MeterTimeout(f"no answer within {response_timeout * 1000:.0f} ms", **where) from exc
        except ConnectionException as exc:
            self.failures += 1
            client.close()
            raise BusUnavailable(f"connection lost: {exc}", **where) from exc
        except ModbusIOException as exc:
            self.failures += 1
            raise BadResponse(f"unusable answer: {exc}", **where) from exc
        except ModbusException as exc:
            self.failures += 1
            raise BadResponse(str(exc), **where) from exc
        except OSError as exc:
            self.failures += 1
            client.close()
            raise BusUnavailable(f"I/O error: {exc}", **where) from exc
        if isinstance(response, ExceptionResponse) or response.isError():
            self.failures += 1
            raise MeterExceptionResponse(getattr(response, "exception_code", 0), **where)
        registers = list(response.registers)
        if len(registers) != request.count:
            self.failures += 1
            raise BadResponse(f"asked for {request.count} registers, got {len(registers)}", **where)
        return registers

    async def close(self) -> None:
        self.closed = True
        # Not behind the lock: a request stuck inside pymodbus must not hold up closing. Closing the
        # client ends its transport; the request in flight then ends at its own timeout at the latest.
        if self._client is not None:
            self._client.close()
            self._client = None


class _Slot:
    """One connection of a TCP bus and who may use it."""

    def __init__(self, pipeline: int) -> None:
        self.lock = PriorityLock(pipeline)
        self.connecting = asyncio.Lock()
        self.conn: ModbusTcpConnection | None = None

    @property
    def usable(self) -> bool:
        return self.conn is not None and not self.conn.closed

    def release_one(self, _: object = None) -> None:
        """A pipelined request's place, given back when its answer (or failure) is in."""
        self.lock.release()


class TcpBus(Bus):
    """One Modbus TCP endpoint shared by its meters: at most ``max_connections`` connections (default
    1), each carrying one request at a time (``pipeline`` = 1) or up to ``pipeline`` at once."""

    kind = "tcp"
    aligned_slots = True

    def __init__(
        self,
        name: str,
        host: str,
        port: int = 502,
        *,
        connect_timeout: float = 3.0,
        max_connections: int = 1,
        pipeline: int = 1,
        reconnect_delay: float = 1.0,
    ) -> None:
        super().__init__(name, connect_timeout=connect_timeout)
        if max_connections < 1 or pipeline < 1:
            raise ValueError("max_connections and pipeline must be at least 1")
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.pipeline = pipeline
        self.reconnect_delay = reconnect_delay
        self._slots = [_Slot(pipeline) for _ in range(max_connections)]
        self._retry_at = 0.0  # loop time before which a failed connect is not attempted again
        self.connections_opened = 0
        self._stray_closed = 0  # stray answers counted on connections since closed

    def describe(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connections(self) -> int:
        return sum(1 for s in self._slots if s.usable)

    @property
    def stray_answers(self) -> int:
        """Answers that matched no outstanding request (late after a timeout, or unsolicited)."""
        return self._stray_closed + sum(s.conn.stray for s in self._slots if s.conn is not None)

    def status(self) -> dict[str, Any]:
        return {**super().status(), "connections": self.connections, "max_connections": self.max_connections,
                "connections_opened": self.connections_opened, "stray_answers": self.stray_answers}

    def _pick(self) -> _Slot:
        """A connected slot with room, else an unconnected one (opening another connection), else the
        slot with the fewest waiters."""
        if len(self._slots) == 1:
            return self._slots[0]
        free_unconnected = None
        for slot in self._slots:
            if not slot.lock.locked():
                if slot.usable:
                    return slot
                if free_unconnected is None:
                    free_unconnected = slot
        if free_unconnected is not None:
            return free_unconnected
        return min(self._slots, key=lambda s: s.lock.waiting)

    async def _connection(self, slot: _Slot) -> ModbusTcpConnection:
        conn = slot.conn
        if conn is not None and not conn.closed:
            return conn
        async with slot.connecting:
            conn = slot.conn
            if conn is not None and not conn.closed:
                return conn
            if self.closed:
                raise self._closed_error(None)
            loop = asyncio.get_running_loop()
            if self._down is not None and loop.time() < self._retry_at:
                raise self._unavailable(self._down)  # no connection storm: one attempt per delay
            try:
                async with asyncio.timeout(self.connect_timeout):
                    conn = await ModbusTcpConnection.open(self.host, self.port, on_lost=self._lost)
            except TimeoutError:
                self._retry_at = loop.time() + self.reconnect_delay
                raise self._unavailable(f"no connection within {self.connect_timeout:g} s") from None
            except OSError as exc:
                self._retry_at = loop.time() + self.reconnect_delay
                raise self._unavailable(_os_reason(exc)) from exc
            if self.closed:
                conn.close()
                raise self._closed_error(None)
            slot.conn = conn
            self.connections_opened += 1
            self._opened()
            log.debug("bus %s: connection %d to %s open", self.name, self.connections_opened, self.describe())
            return conn

    def _lost(self, conn: ModbusTcpConnection, exc: Exception | None) -> None:
        self._stray_closed += conn.stray
        conn.stray = 0
        if not self.closed and not conn.closing:
            log.warning("bus %s: connection to %s lost (%s); reconnecting at the next request",
                        self.name, self.describe(), exc)

    def _error(self, exc: Exception, unit: int, request: RegisterRange, response_timeout: float) -> MeterError:
        """A request's failure as the MeterError its meter reports."""
        self.failures += 1
        where: dict[str, Any] = {"bus": self.name, "unit": unit, "address": request.address}
        if isinstance(exc, TimeoutError):
            return MeterTimeout(f"no answer within {response_timeout * 1000:.0f} ms", **where)
        if isinstance(exc, ExceptionAnswer):
            return MeterExceptionResponse(exc.code, **where)
        if isinstance(exc, RequestFailed):
            return BadResponse(str(exc), **where)
        if self.closed:
            return self._closed_error(unit)
        return BusUnavailable(str(exc), **where)

    async def read_bytes(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> bytes:
        if self.closed:
            raise self._closed_error(unit)
        self._check_function(unit, request)
        slot = self._pick()
        await slot.lock.acquire(priority)
        try:
            conn = await self._connection(slot)
            self.requests += 1
            try:
                return await conn.request(unit, request.function_code, request.address, request.count,
                                          response_timeout)
            except (TimeoutError, ExceptionAnswer, RequestFailed, ConnectionLost) as exc:
                raise self._error(exc, unit, request, response_timeout) from None
        finally:
            slot.lock.release()

    async def read_many_bytes(
        self, unit: int, requests: Sequence[RegisterRange], *, response_timeout: float, priority: int = 0
    ) -> list[bytes | MeterError | None]:
        """With ``pipeline`` above 1, a meter's requests are all in flight at once (each holding one of
        the connection's places), and its cycle costs one round trip instead of one per request."""
        if self.pipeline == 1 or len(requests) == 1:
            return await super().read_many_bytes(
                unit, requests, response_timeout=response_timeout, priority=priority
            )
        if self.closed:
            raise self._closed_error(unit)
        for request in requests:
            self._check_function(unit, request)
        slot = self._pick()
        started: list[asyncio.Future[bytes]] = []
        try:
            for request in requests:
                await slot.lock.acquire(priority)
                try:
                    conn = await self._connection(slot)
                    future = conn.start(unit, request.function_code, request.address, request.count,
                                        response_timeout)
                except BaseException:
                    slot.lock.release()
                    raise
                self.requests += 1
                future.add_done_callback(slot.release_one)
                started.append(future)
            results: list[bytes | MeterError | None] = []
            for request, future in zip(requests, started, strict=True):
                try:
                    results.append(await future)
                except (TimeoutError, ExceptionAnswer, RequestFailed, ConnectionLost) as exc:
                    results.append(self._error(exc, unit, request, response_timeout))
            return results
        finally:
            for future in started:
                future.cancel()  # when we were cancelled: stop waiting, give the places back

    async def close(self) -> None:
        self.closed = True
        for slot in self._slots:
            if slot.conn is not None:
                slot.conn.close()  # fails every request still waiting on it at once


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may succeed (timeouts, lost connections, busy meters)."""
    return isinstance(exc, MeterError) and exc.transient
