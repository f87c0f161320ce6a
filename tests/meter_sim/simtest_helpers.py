"""Helpers for the simulator's tests: a hand-driven clock and short-timeout Modbus clients.

A module with its own name rather than conftest, so tests can import it without clashing with other
packages' conftest modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

# Short enough to keep fault tests quick, long enough for a loaded CI machine to answer healthy reads.
FAULT_TIMEOUT_S = 0.4


class ManualClock:
    """A monotonic clock that only moves when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def tcp_client(port: int, client_timeout: float = 2.0) -> AsyncIterator[AsyncModbusTcpClient]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=client_timeout, retries=0)
    assert await client.connect(), f"cannot connect to the simulator on port {port}"
    try:
        yield client
    finally:
        client.close()


@asynccontextmanager
async def rtu_client(device: str, baudrate: int = 9600,
                     client_timeout: float = 2.0) -> AsyncIterator[AsyncModbusSerialClient]:
    client = AsyncModbusSerialClient(device, baudrate=baudrate, timeout=client_timeout, retries=0)
    assert await client.connect(), f"cannot open {device}"
    try:
        yield client
    finally:
        client.close()
