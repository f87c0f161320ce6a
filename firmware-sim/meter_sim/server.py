"""Modbus TCP and RTU servers for simulated meters.

A small asyncio server rather than pymodbus' own: meters on one bus must be able to fall silent or send
damaged frames one by one, which pymodbus' server (and its datastore classes, deprecated in 3.16 and
warning on every use) does not allow cleanly. The framing is still pymodbus': ``FramerSocket`` for the
MBAP header and ``FramerRTU`` for RTU frame detection and CRC-16/MODBUS.

RTU on a pty has no baud timing, so with ``emulate_wire_time`` each answer waits for the time the
request and the answer would take on a real RS-485 line (:func:`wire_time_s`), and answers never
overlap on the simulated bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine, Iterable
from types import TracebackType
from typing import Any

import serial
from pymodbus.framer import FramerRTU, FramerSocket
from pymodbus.pdu import DecodePDU

from meter_sim.errors import ConfigError, MeterSimError
from meter_sim.meter import SimMeter
from meter_sim.protocol import Dispatcher, Reply

log = logging.getLogger(__name__)

BITS_PER_CHAR = 11
"""Start bit, 8 data bits, parity or a second stop bit, stop bit (Modbus over serial line, 2.5.1)."""
MAX_MBAP_LENGTH = 254  # unit id + the largest PDU (253 bytes)


def char_time_s(baudrate: int) -> float:
    return BITS_PER_CHAR / baudrate


def silent_interval_s(baudrate: int) -> float:
    """The 3.5-character gap that ends an RTU frame; the specification fixes it at 1.75 ms above 19200
    baud, where 3.5 characters would be shorter."""
    return max(3.5 * char_time_s(baudrate), 0.00175)


def wire_time_s(request_bytes: int, response_bytes: int, baudrate: int) -> float:
    """Time a request and its answer occupy a real RS-485 line: both frames at 11 bits per byte plus
    one silent interval. The RTU server waits this long before answering when emulating wire time."""
    return (request_bytes + response_bytes) * char_time_s(baudrate) + silent_interval_s(baudrate)


def _garble_rtu(frame: bytes) -> bytes:
    """Flip the bits of one byte in the middle, as line noise does: the CRC no longer matches."""
    damaged = bytearray(frame)
    damaged[len(damaged) // 2] ^= 0xFF
    return bytes(damaged)


def _garble_tcp(frame: bytes) -> bytes:
    """Keep the MBAP header intact but make the PDU undecodable: a function code that does not exist
    and a byte count larger than the data that follows."""
    damaged = bytearray(frame)
    damaged[7] = 0x00
    if len(damaged) > 8:
        damaged[8] = 0xFF
    return bytes(damaged)


class _Tasks:
    """Tasks spawned per request, cancelled together when their owner closes."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def cancel_all(self) -> None:
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class TcpServer:
    """Modbus TCP server for one or more meters (distinct unit ids). Use as an async context manager;
    ``port`` is the bound port (useful with ``port=0``).

    ``max_connections`` makes it behave like a Modbus TCP <-> RS-485 converter that accepts only so many
    clients: a connection beyond the limit is closed at once (counted in ``connections_refused``).
    ``connections_accepted``, ``peak_connections`` and ``connection_count`` are what a test observes
    from the server side. ``answer_any_unit`` answers every unit id with the first meter."""

    def __init__(self, meters: Iterable[SimMeter], host: str = "127.0.0.1", port: int = 0, *,
                 max_connections: int | None = None, answer_any_unit: bool = False) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"TCP port {port} outside 0..65535")
        if max_connections is not None and max_connections < 1:
            raise ConfigError(f"max_connections must be at least 1, not {max_connections}")
        self.host = host
        self.port = port
        self._requested_port = port
        self.max_connections = max_connections
        self.connections_accepted = 0
        self.connections_refused = 0
        self.peak_connections = 0
        self.requests_served = 0
        self._dispatcher = Dispatcher(meters, where=f"tcp {host}:{port}", answer_any_unit=answer_any_unit)
        self._framer = FramerSocket(DecodePDU(True))
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    @property
    def meters(self) -> dict[int, SimMeter]:
        return self._dispatcher.meters

    @property
    def connection_count(self) -> int:
        """Client connections open now."""
        return len(self._connections)

    async def __aenter__(self) -> TcpServer:
        try:
            self._server = await asyncio.start_server(self._on_client, self.host, self._requested_port)
        except OSError as exc:
            raise MeterSimError(f"cannot listen on tcp {self.host}:{self._requested_port}: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        self._dispatcher.where = f"tcp {self.host}:{self.port}"
        log.info("serving %s on tcp %s:%d", _describe(self.meters), self.host, self.port)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Python 3.11's Server.close leaves accepted connections open. Closing their transports ends
        # each handler's read loop; cancelling the handler tasks instead trips an asyncio 3.11 bug
        # (the stream protocol's done-callback calls exception() on the cancelled task).
        for writer in self._connections.values():
            writer.close()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        assert me is not None
        peer = writer.get_extra_info("peername")
        if self.max_connections is not None and len(self._connections) >= self.max_connections:
            self.connections_refused += 1
            log.info("tcp %s:%d: refusing %s: already %d connection(s), the limit", self.host, self.port, peer,
                     len(self._connections))
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            return
        self._connections[me] = writer
        self.connections_accepted += 1
        self.peak_connections = max(self.peak_connections, len(self._connections))
        requests = _Tasks()
        lock = asyncio.Lock()
        buf = bytearray()
        try:
            while chunk := await reader.read(4096):
                buf += chunk
                while len(buf) >= 8:
                    if buf[2:4] != b"\0\0" or int.from_bytes(buf[4:6], "big") > MAX_MBAP_LENGTH:
                        log.warning("tcp %s:%d: %s sent a bad MBAP header %s, closing",
                                    self.host, self.port, peer, bytes(buf[:8]).hex())
                        return
                    used, unit, tid, pdu = self._framer.decode(bytes(buf))
                    if not used:
                        break
                    del buf[:used]
                    requests.spawn(self._respond(writer, lock, unit, tid, pdu), f"tcp unit {unit} tid {tid}")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await requests.cancel_all()
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
            self._connections.pop(me, None)

    async def _respond(self, writer: asyncio.StreamWriter, lock: asyncio.Lock, unit: int, tid: int,
                       pdu: bytes) -> None:
        reply = self._dispatcher.handle(unit, pdu)
        if reply is None:
            return
        self.requests_served += 1
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        frame = self._framer.encode(reply.pdu, unit, tid)
        if reply.corrupt:
            frame = _garble_tcp(frame)
        if reply.unsolicited:
            # Another answer under a transaction id the client is not using (ids count up from 1).
            frame += self._framer.encode(reply.pdu, unit, (tid + 0x8000) & 0xFFFF)
        async with lock:
            writer.write(frame)
            with contextlib.suppress(ConnectionError):
                await writer.drain()


class RtuServer:
    """Modbus RTU server on a serial device (a real port or one end of a pty pair). All meters share
    the bus; a request for a unit id nobody has, or for a silent meter, gets no answer at all."""

    def __init__(
        self,
        meters: Iterable[SimMeter],
        device: str,
        baudrate: int = 9600,
        emulate_wire_time: bool = True,
        *,
        parity: str = "N",
        stopbits: int = 1,
        answer_any_unit: bool = False,
    ) -> None:
        if baudrate <= 0:
            raise ConfigError(f"baud rate must be positive, not {baudrate}")
        if parity not in ("N", "E", "O"):
            raise ConfigError(f"parity must be N, E or O, not {parity!r}")
        if stopbits not in (1, 2):
            raise ConfigError(f"stop bits must be 1 or 2, not {stopbits}")
        self.device = device
        self.baudrate = baudrate
        self.emulate_wire_time = emulate_wire_time
        self.parity = parity
        self.stopbits = stopbits
        self._dispatcher = Dispatcher(meters, where=f"rtu {device}", answer_any_unit=answer_any_unit)
        self._framer = FramerRTU(DecodePDU(True))
        self._serial: serial.Serial | None = None
        self._buf = bytearray()
        self._last_rx = 0.0
        self._bus_free_at = 0.0
        self._tasks = _Tasks()
        self._closed = asyncio.Event()
        self.error: BaseException | None = None
        """Set when the device failed (e.g. the other end of a pty went away)."""

    @property
    def meters(self) -> dict[int, SimMeter]:
        return self._dispatcher.meters

    async def __aenter__(self) -> RtuServer:
        try:
            self._serial = serial.Serial(
                port=self.device,
                baudrate=self.baudrate,
                bytesize=serial.EIGHTBITS,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=0,
                write_timeout=2.0,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise MeterSimError(f"cannot open serial device {self.device}: {exc}") from exc
        self._serial.reset_input_buffer()
        asyncio.get_running_loop().add_reader(self._serial.fileno(), self._on_readable)
        log.info("serving %s on rtu %s at %d baud%s", _describe(self.meters), self.device, self.baudrate,
                 " (emulating wire time)" if self.emulate_wire_time else "")
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def close(self) -> None:
        if self._serial is None:
            return
        self._stop_reading()
        await self._tasks.cancel_all()
        self._serial.close()
        self._serial = None
        self._closed.set()

    async def wait_closed(self) -> None:
        """Returns when the server is closed or its device failed (see ``error``)."""
        await self._closed.wait()

    def _stop_reading(self) -> None:
        if self._serial is not None and self._serial.is_open:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._serial.fileno())

    @property
    def frame_gap_s(self) -> float:
        """Silence after which a partial frame is dropped. Longer than 3.5 characters on purpose: USB
        adapters and ptys deliver a frame in chunks with small delays between them."""
        return max(silent_interval_s(self.baudrate), 0.05)

    def _on_readable(self) -> None:
        assert self._serial is not None
        try:
            chunk = os.read(self._serial.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            chunk = b""
            self.error = exc
        if not chunk:
            self.error = self.error or MeterSimError(f"serial device {self.device} closed")
            log.error("rtu %s: %s; no longer serving", self.device, self.error)
            self._stop_reading()
            self._closed.set()
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._buf and now - self._last_rx > self.frame_gap_s:
            log.debug("rtu %s: dropping %d stale bytes %s", self.device, len(self._buf), self._buf.hex())
            self._buf.clear()
        self._last_rx = now
        self._buf += chunk
        while self._buf:
            used, unit, _, pdu = self._framer.decode(bytes(self._buf))
            if not used:
                break
            del self._buf[:used]
            if pdu:
                request_len = len(pdu) + 3  # unit id + PDU + CRC
                self._tasks.spawn(self._respond(unit, pdu, request_len, now), f"rtu unit {unit}")
            else:
                log.debug("rtu %s: dropped %d bytes with a bad CRC", self.device, used)

    async def _respond(self, unit: int, pdu: bytes, request_len: int, received_at: float) -> None:
        reply: Reply | None = self._dispatcher.handle(unit, pdu)
        if reply is None:
            return
        frame = self._framer.encode(reply.pdu, unit, 0)
        if reply.corrupt:
            frame = _garble_rtu(frame)
        loop = asyncio.get_running_loop()
        send_at = received_at + reply.delay_s
        if self.emulate_wire_time:
            # The bus carries one frame at a time: an answer starts after the previous one ended.
            send_at = max(send_at, self._bus_free_at) + wire_time_s(request_len, len(frame), self.baudrate)
            self._bus_free_at = send_at
        delay = send_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if self._serial is None:
            return
        try:
            self._serial.write(frame)
        except (serial.SerialException, OSError) as exc:
            log.error("rtu %s: cannot answer unit %d: %s", self.device, unit, exc)
            return
        if reply.unsolicited:
            # The same frame again a little later, when the master no longer waits for it.
            await asyncio.sleep(self.frame_gap_s * 2)
            if self._serial is not None:
                with contextlib.suppress(serial.SerialException, OSError):
                    self._serial.write(frame)


def serve_tcp(meters: Iterable[SimMeter], host: str = "127.0.0.1", port: int = 0, *,
              max_connections: int | None = None, answer_any_unit: bool = False) -> TcpServer:
    """``async with serve_tcp(meters) as server:`` -- Modbus TCP on ``server.port``."""
    return TcpServer(meters, host, port, max_connections=max_connections, answer_any_unit=answer_any_unit)


def serve_rtu(
    meters: Iterable[SimMeter],
    device: str,
    baudrate: int = 9600,
    emulate_wire_time: bool = True,
    *,
    parity: str = "N",
    stopbits: int = 1,
    answer_any_unit: bool = False,
) -> RtuServer:
    """``async with serve_rtu(meters, "/dev/ttyUSB0") as server:`` -- Modbus RTU on ``server.device``."""
    return RtuServer(meters, device, baudrate, emulate_wire_time, parity=parity, stopbits=stopbits,
                     answer_any_unit=answer_any_unit)


def _describe(meters: dict[int, SimMeter]) -> str:
    return ", ".join(f"{m.model} unit {u}" for u, m in sorted(meters.items()))
