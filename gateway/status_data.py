"""What the daemon is doing now, as plain data (JSON-ready) for the status page and scripts.

One vocabulary with the MQTT messages (docs/mqtt.md): a reading's clock is ``unsynced``, ``ntp`` or
``gnss`` (as in the readings message, never the bit value), the MQTT link is ``online`` or ``offline``
(as in the gateway's status message), and the key fingerprint is the one in the status message. Meter
states are ``unknown``, ``online``, ``offline`` or ``refused``; a meter's ``identity`` is what the device
reported about itself and ``identity_problem`` why that contradicts the configuration. The outbox's disk
state is ``ok``, ``limited``, ``full`` or ``no_space`` (gateway.disk).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Callable, Iterable
from typing import Any

from gateway.poller import MeterStatus
from gateway.service import ServiceStats
from gateway.transport import Bus
from gridtokenx.reading import ClockSource

__all__ = ["plain", "snapshot"]


def plain(value: Any) -> Any:
    """Dataclasses, enums, tuples and floats → JSON values in the shared vocabulary."""
    if isinstance(value, ClockSource):
        return value.name.lower()
    if isinstance(value, enum.Enum):
        return value.value if isinstance(value.value, str) else value.name.lower()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN
    return value


def _meter(status: MeterStatus) -> dict[str, Any]:
    out: dict[str, Any] = plain(status)
    identity = status.identity
    out["identity"] = None if identity is None else identity.describe()
    out["identity_kind"] = None if identity is None else identity.kind
    return out


def snapshot(
    *,
    gateway_id: str,
    key_fingerprint: str,
    time_utc: str,
    meters: Iterable[MeterStatus],
    buses: Iterable[Bus],
    service: Callable[[], ServiceStats | None],
) -> dict[str, Any]:
    stats = service()
    return {
        "gateway_id": gateway_id,
        "key_fingerprint": key_fingerprint,
        "time_utc": time_utc,
        "meters": [_meter(m) for m in meters],
        "buses": [plain(b.status()) for b in buses],
        # None until the outbox is open: the page may be asked before the service is up.
        "service": None if stats is None else plain(stats),
        "mqtt": None if stats is None else stats.publisher.mqtt,
        "disk_state": None if stats is None else stats.disk_state,
    }
