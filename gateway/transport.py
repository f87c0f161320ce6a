"""One Modbus client per bus, and the rules for sharing it.

* RTU (RS-485): every meter on the wire shares one half-duplex line, so frames are serialised with an
  :class:`asyncio.Lock` and separated by the inter-frame gap (3.5 character times; fixed 1.75 ms above
  19200 baud as the Modbus serial line spec says).  pymodbus has its own lock, but it neither keeps a
  gap nor lets each request have its own timeout, so the bus does both.
* TCP: each meter gets its own connection, so a silent meter behind one IP never holds up a request to
  another (pymodbus serialises requests on a connection).  Meters run concurrently.

Per-request timeouts belong to the meter (some need 600 ms), so they are enforced here with
``asyncio.timeout`` around each request; pymodbus' own retries are off (``retries=0``) because the
poller retries with backoff between requests, letting other meters use the bus meanwhile.
Every pymodbus / OS error leaves this module as a :class:`gateway.errors.MeterError`.
"""

from __future__ import annotations

import abc
import asyncio
import heapq
import itertools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ExceptionResponse

from gateway.errors import BadResponse, BusUnavailable, MeterError, MeterExceptionResponse, MeterTimeout
from gateway.register_map import READ_HOLDING, READ_INPUT, RegisterRange

__all__ = ["Bus", "PriorityLock", "RtuBus", "TcpBus", "char_time", "is_transient", "rtu_inter_frame_gap"]

log = logging.getLogger(__name__)

# pymodbus uses its timeout for connecting and for responses; we impose our own on both, so its own
# must never fire first.
_PYMODBUS_TIMEOUT = 3600.0


def char_time(baudrate: int, *, bits_per_char: int = 11) -> float:
    """Seconds one RTU character occupies on the wire (start + 8 data + parity/stop = 11 bits)."""
    return bits_per_char / baudrate


def rtu_inter_frame_gap(baudrate: int, *, bits_per_char: int = 11) -> float:
    """The silent interval t3.5 that separates RTU frames."""
    if baudrate > 19200:
        return 0.00175
    return 3.5 * char_time(baudrate, bits_per_char=bits_per_char)


class PriorityLock:
    """An asyncio lock whose waiters are served lowest ``priority`` first, FIFO within a priority.

    A silent meter holds an RS-485 line for a whole timeout per attempt and nothing can shorten that
    (a late answer would collide with the next frame), but it need not jump the queue: meters that
    are failing ask with a lower priority, so healthy meters waiting for the line always go first.
    """

    def __init__(self) -> None:
        self._locked = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def locked(self) -> bool:
        return self._locked

    async def acquire(self, priority: int = 0) -> None:
        if not self._locked and not self._waiters:
            self._locked = True
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
        if not self._locked:
            raise RuntimeError("PriorityLock is not locked")
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)  # ownership passes directly; the lock stays locked
                return
        self._locked = False

    @asynccontextmanager
    async def hold(self, priority: int = 0) -> AsyncIterator[None]:
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()


class Bus(abc.ABC):
    """A place meters hang off.  Use as ``async with``: enter opens, exit closes.  ``read`` raises
    :class:`MeterError` subclasses only.  ``requests`` counts requests sent, for status and benches."""

    kind: str

    def __init__(self, name: str, *, connect_timeout: float) -> None:
        self.name = name
        self.connect_timeout = connect_timeout
        self.requests = 0
        self.failures = 0

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
    async def read(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> list[int]:
        """The registers of ``request`` from ``unit``, or a :class:`MeterError`.  ``response_timeout``
        counts from sending the request: time spent waiting for the bus is not the meter's fault.
        On a shared line, requests with a lower ``priority`` number go first (0: healthy meter)."""

    async def _connect(self, client: Any, unit: int | None) -> None:
        if client.connected:
            return
        try:
            async with asyncio.timeout(self.connect_timeout):
                ok = await client.connect()
        except TimeoutError:
            ok = False
        except OSError as exc:
            client.close()
            error = BusUnavailable(f"cannot open {self.describe()}: {exc}", bus=self.name, unit=unit)
            error.transient = False
            raise error from exc
        if not ok:
            client.close()
            error = BusUnavailable(f"cannot open {self.describe()}", bus=self.name, unit=unit)
            # A port or host that just refused will not be back within this cycle's retries; the
            # poller tries again next cycle (or next probe, once the meters are offline).
            error.transient = False
            raise error

    def describe(self) -> str:
        return self.name

    async def _request(self, client: Any, unit: int, request: RegisterRange, response_timeout: float) -> list[int]:
        if request.function_code == READ_INPUT:
            call = client.read_input_registers
        elif request.function_code == READ_HOLDING:
            call = client.read_holding_registers
        else:
            raise BadResponse(
                f"function code {request.function_code} is not a register read",
                bus=self.name,
                unit=unit,
                address=request.address,
            )
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
        self._client: AsyncModbusSerialClient | None = None
        self._last_frame_end = 0.0

    def describe(self) -> str:
        return f"{self.device} at {self.baudrate} baud"

    def _get_client(self) -> AsyncModbusSerialClient:
        if self._client is None:
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

    async def read(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> list[int]:
        loop = asyncio.get_running_loop()
        while True:
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
                client = self._get_client()
                await self._connect(client, unit)
                try:
                    return await self._request(client, unit, request, response_timeout)
                finally:
                    # The gap counts from the end of the answer, or of our waiting for one.
                    self._last_frame_end = loop.time()
            finally:
                self._lock.release()

    async def close(self) -> None:
        async with self._lock.hold():
            if self._client is not None:
                self._client.close()
                self._client = None


class TcpBus(Bus):
    """Modbus TCP: a connection per unit id, created on first use; requests to different units run
    concurrently."""

    kind = "tcp"

    def __init__(self, name: str, host: str, port: int = 502, *, connect_timeout: float = 3.0) -> None:
        super().__init__(name, connect_timeout=connect_timeout)
        self.host = host
        self.port = port
        self._clients: dict[int, AsyncModbusTcpClient] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    def describe(self) -> str:
        return f"{self.host}:{self.port}"

    async def read(
        self, unit: int, request: RegisterRange, *, response_timeout: float, priority: int = 0
    ) -> list[int]:
        # Each unit has its own connection: there is no shared line to give priority on.
        lock = self._locks.setdefault(unit, asyncio.Lock())
        async with lock:
            client = self._clients.get(unit)
            if client is None:
                client = AsyncModbusTcpClient(
                    self.host,
                    port=self.port,
                    timeout=_PYMODBUS_TIMEOUT,
                    retries=0,
                    reconnect_delay=0,
                    name=f"{self.name}/{unit}",
                )
                self._clients[unit] = client
            await self._connect(client, unit)
            # A late answer to a timed-out request carries an old transaction id; pymodbus drops it.
            return await self._request(client, unit, request, response_timeout)

    async def release(self, unit: int) -> None:
        """Close the connection used for ``unit`` (a scanner probing many units keeps few open)."""
        async with self._locks.setdefault(unit, asyncio.Lock()):
            client = self._clients.pop(unit, None)
            if client is not None:
                client.close()

    async def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same request may succeed (timeouts, lost connections, busy meters)."""
    return isinstance(exc, MeterError) and exc.transient
