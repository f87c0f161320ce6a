"""The daemon's eye on itself: every second it takes a snapshot of meters, delivery and process, says
what is wrong (:mod:`gateway.health`), tells systemd (``READY``, ``STATUS``, ``WATCHDOG``) and hands
the snapshot to the status page, ``/healthz`` and ``/metrics``.

Ownership: :meth:`Supervisor.run` is one task of a daemon generation (see :mod:`gateway.cli_run`),
cancelled with it. The snapshot is built here, on a timer, not per HTTP request: a thousand page
loads cost a thousand renderings of the same dictionary, never a thousand outbox queries.

The snapshot is a plain JSON-ready ``dict`` (served as ``/status.json``); its keys are documented in
:meth:`Supervisor.refresh`. Other parts of the daemon add facts by adding keys here and, if the fact
can be wrong, a check in :data:`gateway.health.CHECKS`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.health import ProgressWatch, problems, status_line
from gateway.memory import trim
from gateway.sd_notify import Notifier
from gridtokenx import __version__
from gridtokenx.reading import ClockSource

if TYPE_CHECKING:
    from gateway.config import GatewayConfig
    from gateway.keys import DeviceKey
    from gateway.poller import MeterStatus, Poller
    from gateway.service import GatewayService

__all__ = ["Supervisor", "rss_bytes"]

log = logging.getLogger(__name__)

_SLOW_EVERY_S = 5.0  # outbox size and oldest reading: a database query, so not every tick
_TRIM_EVERY_S = 60.0  # give freed C-heap pages back to the kernel (gateway.memory)
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (0 where there is none)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _finite_values(values: Mapping[str, float]) -> dict[str, float | None]:
    """The values with NaN and infinities as None (JSON has neither). Every tick copies all meters'
    values, so the common case -- all finite -- is one C-level check and one copy, not a call per value."""
    if all(map(math.isfinite, values.values())):
        return dict(values)
    return {k: _finite(v) for k, v in values.items()}


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class Supervisor:
    def __init__(
        self,
        *,
        config: GatewayConfig,
        key: DeviceKey,
        poller: Poller,
        service: GatewayService,
        notifier: Notifier,
        clock: Callable[[], ClockSource] | None = None,
        started_ms: int | None = None,
    ) -> None:
        self.config = config
        self.key = key
        self.poller = poller
        self.service = service
        self.notifier = notifier
        self.clock = clock
        self.started_ms = started_ms if started_ms is not None else int(time.time() * 1000)
        watchdog = notifier.watchdog_s
        # Ping at half the watchdog period (systemd's advice), look at least once a second.
        self.tick_s = min(1.0, watchdog / 2) if watchdog else 1.0
        # A piece of work that has not moved for a whole watchdog period means the daemon is stuck.
        self.progress = ProgressWatch(stall_after_s=watchdog if watchdog else 60.0)
        self.ready = asyncio.Event()  # set once READY=1 was due: outbox open, every meter polled once
        self._slow: dict[str, Any] = {"outbox_bytes": None, "oldest_pending_ms": None}
        self._slow_at = -math.inf
        self._status_text = ""
        self._snapshot: dict[str, Any] = {}
        self._stalled: list[str] = []
        self._said_stalled = False
        self.refresh()

    # -- the snapshot --------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The last snapshot with every meter's decoded values and identity filled in. Those are built
        here, when a page asks, not at every tick: the tick only needs states and counters (STATUS=,
        the watchdog, the problems), and thirty values per meter every second cost more than the rest."""
        snap = self._snapshot
        meters = []
        for m in snap.get("meters", []):
            poller = self.poller.meter(m["meter_id"])
            sample = poller.status().last_sample
            identity = poller.identity
            meters.append({
                **m,
                "values": {} if sample is None else _finite_values(sample.values),
                "identity": None if identity is None else identity.describe(),
            })
        return {**snap, "meters": meters}

    def refresh(self) -> dict[str, Any]:
        """Build the snapshot from what the poller and the service hold now (no I/O)."""
        now_ms = int(time.time() * 1000)
        status = self.config.status
        meters = [self._meter(m) for m in self.poller.status()]
        snap: dict[str, Any] = {
            "gateway_id": self.config.gateway.id,
            "key_fingerprint": self.key.fingerprint,
            "software": f"gridtokenx {__version__}",
            "started_ms": self.started_ms,
            "now_ms": now_ms,
            "uptime_s": (now_ms - self.started_ms) / 1000,
            "clock": self._clock(),
            "meters": meters,
            "buses": [bus.status() for bus in self.poller.buses],
            "delivery": self._delivery(),
            "process": {"rss_bytes": rss_bytes(), "pid": os.getpid()},
            "limits": {
                "broker_grace_s": status.broker_grace_s if status else 30.0,
                "ack_late_s": status.ack_late_s if status else 600.0,
            },
            "stalled": self._stalled,
            "ready": self.ready.is_set(),
        }
        found = problems(snap)
        snap["problems"] = [p.as_dict() for p in found]
        snap["healthy"] = not any(p.severity == "error" for p in found)
        snap["status_line"] = status_line(snap)
        self._snapshot = snap
        return snap

    def _clock(self) -> dict[str, Any]:
        # "source" in the readings' own words (docs/mqtt.md: unsynced, ntp, gnss), never the bit value.
        source = None if self.clock is None else self.clock()
        return {
            "synchronised": None if source is None else source is ClockSource.NTP,
            "source": None if source is None else source.name.lower(),
        }

    def _meter(self, m: MeterStatus) -> dict[str, Any]:
        sample = m.last_sample
        spec = self.poller.meter(m.meter_id).spec
        return {
            "meter_id": m.meter_id,
            "model": m.model,
            "bus": m.bus,
            "unit": m.unit,
            "state": m.state.value,
            "interval_s": spec.interval,
            "period_s": spec.offline_interval if m.state.value == "offline" else spec.interval,
            "polls": m.polls,
            "successes": m.successes,
            "failures": m.failures,
            "consecutive_failures": m.consecutive_failures,
            "flagged": m.flagged,
            "last_error": m.last_error,
            "last_failure_ms": m.last_failure_ms,
            "last_success_ms": m.last_success_ms,
            "import_wh": None if sample is None else sample.import_wh,
            "export_wh": None if sample is None else sample.export_wh,
            "power_w": None if sample is None else sample.power_w,
            "problems": [] if sample is None else list(sample.problems),
            "clock": None if sample is None else sample.clock.name.lower(),
            # Why what the device said it is at first contact (gateway.identify) contradicts the
            # configuration (state "refused", or every reading flagged with identify = "flag"); the
            # identity itself and the values are added by snapshot().
            "identity_problem": m.identity_problem,
        }

    def _delivery(self) -> dict[str, Any] | None:
        service = self.service
        outbox, writer, publisher = service.outbox, service.writer, service.publisher
        if outbox is None or writer is None or publisher is None:
            return None  # the outbox is not open yet
        stats = publisher.stats
        return {
            "broker": publisher.broker,
            "connected": publisher.connected,
            "link_since_ms": publisher.link_since_ms,
            "connects": stats.connects,
            "reconnects": max(0, stats.connects - 1),
            "last_ack_ms": stats.last_ack_ms,
            "pending": outbox.pending,
            "oldest_pending_ms": self._slow["oldest_pending_ms"] if outbox.pending else None,
            "outbox_bytes": self._slow["outbox_bytes"],
            "capacity_rows": outbox.settings.capacity_rows,
            "max_bytes": outbox.settings.max_bytes,
            "epoch": outbox.epoch,
            "disk_full": writer.disk_full,
            # ok, limited, full or no_space (gateway.disk), and the figures behind it.
            "disk_state": outbox.disk.state,
            "disk": dataclasses.asdict(outbox.disk.snapshot()),
            "mqtt": "online" if publisher.connected else "offline",  # the status message's words
            "telemetry_sent": 0 if service.telemetry is None else service.telemetry.sent,
            "samples_in": service.samples_in,
            "samples_dropped": service.buffer.dropped,
            "buffered": len(service.buffer),
            "signed": writer.stored,
            "sent": stats.readings_sent,
            "acked": stats.readings_acked,
            "resent": stats.readings_resent,
            "rejected": stats.readings_rejected,
            "thinned": outbox.thinned_total,
            "ack_timeouts": stats.ack_timeouts,
        }

    async def _refresh_slow(self) -> None:
        outbox = self.service.outbox
        if outbox is None:
            return
        try:
            # Bounded: the outbox lock may be held by a long commit; the watchdog must not wait on it.
            self._slow["outbox_bytes"] = await asyncio.wait_for(outbox.used_bytes(), 2.0)
            self._slow["oldest_pending_ms"] = await asyncio.wait_for(outbox.oldest_timestamp_ms(), 2.0)
        except Exception as exc:  # a figure missing for a while is not a failure (TimeoutError included)
            log.debug("outbox figures not refreshed: %s", exc)

    # -- the loop --------------------------------------------------------------------------------

    def _check_progress(self) -> None:
        writer = self.service.writer
        self._stalled = self.progress.stalled(
            [(m["meter_id"], m["polls"], m["period_s"]) for m in self._snapshot["meters"]],
            stored=None if writer is None else writer.stored,
            buffered=len(self.service.buffer),
            disk_full=False if writer is None else writer.disk_full,
        )

    async def _first_round(self) -> None:
        """The outbox is open and every meter has been polled once (answered or not)."""
        await self.service.ready.wait()
        # The poller owns its counters and offers no event for "polled once"; 50 ms checks cost nothing.
        while any(m.polls == 0 for m in self.poller.status()):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def run(self) -> None:
        await self._first_round()
        await self._refresh_slow()
        self._slow_at = time.monotonic()
        self.refresh()
        self.notifier.ready(self._snapshot["status_line"])
        self._status_text = self._snapshot["status_line"]
        log.info("ready: %s", self._status_text)
        self.ready.set()
        trim()  # start-up garbage (config validation, the first round) is done with
        trimmed_at = time.monotonic()
        while True:
            await asyncio.sleep(self.tick_s)
            if time.monotonic() - trimmed_at >= _TRIM_EVERY_S:
                trimmed_at = time.monotonic()
                trim()
            outbox = self.service.outbox
            # Also at once when readings wait but the last look found none: commits come in bursts (one
            # per polling slot), so "nothing pending" may be what the last look happened to see.
            unknown_age = outbox is not None and outbox.pending > 0 and self._slow["oldest_pending_ms"] is None
            if time.monotonic() - self._slow_at >= _SLOW_EVERY_S or unknown_age:
                self._slow_at = time.monotonic()
                await self._refresh_slow()
            self._check_progress()
            snap = self.refresh()
            if snap["status_line"] != self._status_text:
                self._status_text = snap["status_line"]
                self.notifier.status(self._status_text)
            if self._stalled:
                # No WATCHDOG=1: systemd restarts us after WatchdogSec. Said once per stall.
                if not self._said_stalled:
                    log.error("not feeding the watchdog: %s", "; ".join(self._stalled))
                    self._said_stalled = True
            else:
                self._said_stalled = False
                self.notifier.watchdog()
