"""One Modbus TCP client connection: MBAP framing, transaction ids, a deadline per request.

Our own framing rather than pymodbus' client on this path, for three measured reasons:

* CPU: a register read through pymodbus' client builds request and response objects, runs its framer
  and transaction manager and an ``asyncio.wait_for`` per request; here a request is one ``struct.pack``
  of a cached frame tail and the answer is a slice of the receive buffer (bench/bench_gateway_cpu.py).
* Shutdown: ``asyncio.wait_for`` on Python 3.11 can swallow a cancellation that arrives as the answer
  lands (CPython gh-86296), so a daemon stopping while polling could keep polling. Here a request is a
  plain future resolved by the protocol or by a timer; nothing can swallow a cancellation.
* Sharing: several requests may be outstanding on one connection (pipelining), matched to their answers
  by transaction id; an answer whose id is not outstanding — late, after its request timed out, or
  unsolicited — is counted and dropped, never handed to the wrong request.

The frame format is the Modbus Messaging on TCP/IP Implementation Guide's: a 7-byte MBAP header
(transaction id, protocol id 0, length, unit id) before the PDU. Only functions 03 and 04 are spoken.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Callable

__all__ = ["MAX_PDU", "ModbusTcpConnection", "ModbusTcpError", "RequestFailed"]

log = logging.getLogger(__name__)

MAX_PDU = 253
COALESCE_S = 0.003
"""While two or more answers are outstanding, reading pauses this long after each arrival so the next
answers are read together: one wake-up of the process for several answers instead of one each
(bench/bench_gateway_cpu.py: about a fifth less CPU per reading with requests pipelined)."""
_HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
_REQUEST = struct.Struct(">HHHBBHH")  # + function code, address, count


class ModbusTcpError(Exception):
    """Base of what a request can fail with; the transport turns these into MeterErrors."""


class RequestFailed(ModbusTcpError):
    """The answer arrived but is not a usable answer to the request (wrong shape, wrong unit)."""


class ConnectionLost(ModbusTcpError):
    pass


class ExceptionAnswer(ModbusTcpError):
    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception code {code}")
        self.code = code


class ModbusTcpConnection(asyncio.Protocol):
    """An asyncio protocol; create with :meth:`open`. ``request`` returns the register bytes of a
    read, raising :class:`ExceptionAnswer`, :class:`RequestFailed`, :class:`ConnectionLost` or
    ``TimeoutError``. ``stray`` counts answers nobody was waiting for."""

    def __init__(self, on_lost: Callable[[ModbusTcpConnection, Exception | None], None] | None = None) -> None:
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray()
        # tid -> (future, unit, function code, register count)
        self._pending: dict[int, tuple[asyncio.Future[bytes], int, int, int]] = {}
        self._next_tid = 0
        self._on_lost = on_lost
        self.lost: Exception | None = None
        self.closed = False
        self.stray = 0
        self.peer = ""
        self.closing = False
        self._abort_reason: str | None = None
        self._out: list[bytes] = []  # frames written in this loop iteration, sent together
        self._paused = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        on_lost: Callable[[ModbusTcpConnection, Exception | None], None] | None = None,
    ) -> ModbusTcpConnection:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: cls(on_lost), host, port)
        return protocol

    # -- asyncio.Protocol ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a stream transport (uvloop's too)
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:  # requests are tiny: never let Nagle hold one back waiting for the previous ACK
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is None and self._abort_reason is not None:
            exc = ConnectionLost(self._abort_reason)
        self.lost = exc or ConnectionLost("closed" if self.closing else "closed by the other end")
        pending, self._pending = self._pending, {}
        for future, *_ in pending.values():
            if not future.done():
                future.set_exception(ConnectionLost(f"connection lost: {self.lost}"))
        if self._on_lost is not None:
            self._on_lost(self, self.lost)

    def data_received(self, data: bytes) -> None:
        self._receive(data)
        # More answers are on their way: let them gather for a moment and read them in one wake-up
        # rather than one each (a wake-up costs a small machine more than parsing an answer).
        if COALESCE_S > 0 and len(self._pending) >= 2 and self._transport is not None and not self._paused:
            self._paused = True
            self._transport.pause_reading()
            asyncio.get_running_loop().call_later(COALESCE_S, self._resume)

    def _resume(self) -> None:
        self._paused = False
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def _receive(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        while len(buf) >= 8:
            tid, protocol, length, unit = _HEADER.unpack_from(buf)
            if protocol != 0 or not 2 <= length <= MAX_PDU + 1:
                # Framing is lost: nothing later in the stream can be trusted to line up.
                self._abort_reason = f"bad MBAP header {bytes(buf[:8]).hex()}"
                buf.clear()
                self.abort()
                return
            end = 6 + length
            if len(buf) < end:
                return
            pdu = bytes(buf[7:end])
            del buf[:end]
            entry = self._pending.pop(tid, None)
            if entry is None:
                # A late answer to a request that already timed out, or something the server sent on
                # its own: it belongs to no one now.
                self.stray += 1
                log.debug("%s: dropping an answer with transaction id %d (unit %d): no request waits for it",
                          self.peer, tid, unit)
                continue
            future, want_unit, function_code, count = entry
            if future.done():
                continue
            if unit != want_unit:
                future.set_exception(RequestFailed(f"answer from unit {unit}"))
            elif pdu[0] == function_code and len(pdu) == 2 + 2 * count and pdu[1] == 2 * count:
                future.set_result(pdu[2:])
            elif pdu[0] == function_code | 0x80 and len(pdu) == 2:
                future.set_exception(ExceptionAnswer(pdu[1]))
            else:
                future.set_exception(
                    RequestFailed(f"malformed answer (function {pdu[0]}, {len(pdu)} bytes) to a read of {count}")
                )

    # -- requests --------------------------------------------------------------------------------

    def _tid(self) -> int:
        tid = self._next_tid
        for _ in range(65536):
            tid = tid + 1 if tid < 0xFFFF else 1
            if tid not in self._pending:
                self._next_tid = tid
                return tid
        raise RequestFailed("65535 requests outstanding on one connection")

    def start(self, unit: int, function_code: int, address: int, count: int, within: float) -> asyncio.Future[bytes]:
        """Send one read; the future gets the answer's register bytes, or fails (``TimeoutError`` after
        ``within`` seconds). The deadline is a timer on the future, not ``asyncio.timeout``: no task
        cancellation per request, nothing for a library to swallow."""
        transport = self._transport
        if self.closed or self.closing or transport is None:
            raise ConnectionLost(f"connection lost: {self.lost}")
        loop = asyncio.get_running_loop()
        tid = self._tid()
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending[tid] = (future, unit, function_code, count)
        frame = _REQUEST.pack(tid, 0, 6, unit, function_code, address, count)
        if len(self._pending) == 1:
            transport.write(frame)  # the only one in flight: send now
        else:
            # Requests made in the same loop iteration (meters polled on a common schedule, several in
            # flight) leave in one send: each send is a system call, and on a small machine they add up.
            if not self._out:
                loop.call_soon(self._flush)
            self._out.append(frame)
        timer = loop.call_later(within, _expire, future)
        future.add_done_callback(lambda f: self._done(tid, f, timer))
        return future

    def _done(self, tid: int, future: asyncio.Future[bytes], timer: asyncio.TimerHandle) -> None:
        timer.cancel()
        # Gone from the table whatever happened (answered, timed out, cancelled): a late answer with
        # this id is then a stray, not someone else's.
        if self._pending.get(tid, (None,))[0] is future:
            del self._pending[tid]

    async def request(self, unit: int, function_code: int, address: int, count: int, within: float) -> bytes:
        """Send one read and wait at most ``within`` seconds for its answer (the register bytes)."""
        future = self.start(unit, function_code, address, count, within)
        try:
            return await future
        finally:
            future.cancel()  # when we were cancelled: stop waiting (no-op once done)

    def _flush(self) -> None:
        out, self._out = self._out, []
        if out and self._transport is not None and not self.closed:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self.closing = True
        if self._transport is not None and not self.closed:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()


def _expire(future: asyncio.Future[bytes]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
