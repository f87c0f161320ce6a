"""What is wrong with the gateway right now, in words a technician reads — and whether the daemon
itself still makes progress (what the systemd watchdog is fed on).

Two different questions:

* :func:`problems` — the banner of the status page, ``/healthz`` and the ``STATUS=`` line: a dead
  meter, a lost broker, a backend that stopped acknowledging, an unsynchronised clock, a full outbox.
  These are facts about the installation; restarting the daemon would not fix them.
* :class:`ProgressWatch` — are polling and the outbox writer still moving? If not, the daemon is
  stuck, and only then does it stop feeding the watchdog, so systemd restarts it.

:data:`CHECKS` is a table: each entry looks at the snapshot (see :mod:`gateway.supervisor`) and says
what it finds wrong; a new kind of problem is one more function in the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["CHECKS", "Problem", "ProgressWatch", "age_words", "problems", "status_line"]

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    severity: Severity  # "error": /healthz answers 503; "warning": shown, but 200
    what: str  # a short key: "meter:m3", "broker", "ack", "clock", "outbox", "stalled:writer"
    text: str  # one sentence for a person

    def as_dict(self) -> dict[str, str]:
        return {"severity": self.severity, "what": self.what, "text": self.text}


def age_words(seconds: float | None) -> str:
    """12 s, 4 min, 3 h 5 min, 2 days 4 h — how a person says an age."""
    if seconds is None:
        return "never"
    s = max(0, int(seconds))
    if s < 90:
        return f"{s} s"
    if s < 3600:
        return f"{round(s / 60)} min"
    if s < 2 * 86400:
        h, m = divmod(round(s / 60), 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(round(s / 3600), 24)
    return f"{d} days {h} h" if h else f"{d} days"


def _ago(now_ms: int, then_ms: int | None) -> float | None:
    return None if then_ms is None else (now_ms - then_ms) / 1000


def _meters(s: dict[str, Any]) -> list[Problem]:
    out = []
    for m in s["meters"]:
        if m["state"] == "refused":
            out.append(Problem("error", f"meter:{m['meter_id']}",
                               f"Meter {m['meter_id']} is not read: {m['identity_problem']}."))
        elif m.get("identity_problem"):
            out.append(Problem("warning", f"meter:{m['meter_id']}",
                               f"Meter {m['meter_id']} is read, every reading flagged: {m['identity_problem']}."))
        elif m["state"] == "offline":
            since = _ago(s["now_ms"], m["last_success_ms"])
            when = (
                f"no good reading for {age_words(since)}"
                if since is not None
                else f"no answer since the gateway started {age_words(s['uptime_s'])} ago"
            )
            error = f" Last error: {m['last_error']}" if m["last_error"] else ""
            out.append(Problem("error", f"meter:{m['meter_id']}", f"Meter {m['meter_id']} is offline: {when}.{error}"))
        elif m["problems"]:
            out.append(
                Problem(
                    "warning",
                    f"meter:{m['meter_id']}",
                    f"Meter {m['meter_id']} gives implausible values: {'; '.join(m['problems'])}.",
                )
            )
    return out


def _broker(s: dict[str, Any]) -> list[Problem]:
    d = s["delivery"]
    if d is None or d["connected"]:
        return []
    down_for = _ago(s["now_ms"], d["link_since_ms"]) or 0.0
    if d["connects"] == 0:
        if down_for < s["limits"]["broker_grace_s"]:
            return []  # still connecting after start
        text = (
            f"Cannot reach the MQTT broker {d['broker']}: not connected since the gateway started "
            f"({age_words(down_for)} ago)."
        )
    else:
        text = f"MQTT broker {d['broker']} disconnected {age_words(down_for)} ago."
    return [Problem("error", "broker", text + " Readings wait in the outbox.")]


def _ack(s: dict[str, Any]) -> list[Problem]:
    d = s["delivery"]
    if d is None or not d["pending"]:
        return []
    late = s["limits"]["ack_late_s"]
    last = _ago(s["now_ms"], d["last_ack_ms"])
    oldest = _ago(s["now_ms"], d["oldest_pending_ms"])
    if last is not None and last < late:
        return []
    if last is None and (oldest is None or oldest < late) and s["uptime_s"] < late:
        return []
    said = f"for {age_words(last)}" if last is not None else "since the gateway started"
    waiting = f"{d['pending']} readings waiting" + (f", the oldest {age_words(oldest)} old" if oldest else "")
    return [Problem("error", "ack", f"The backend has not acknowledged any reading {said}; {waiting}.")]


def _clock(s: dict[str, Any]) -> list[Problem]:
    if s["clock"]["synchronised"] is False:
        return [
            Problem(
                "warning",
                "clock",
                "The clock is not synchronised (no NTP yet): readings say clock=unsynced and are ordered by "
                "sequence number only.",
            )
        ]
    return []


def _outbox(s: dict[str, Any]) -> list[Problem]:
    d = s["delivery"]
    if d is None:
        return []
    disk = d.get("disk_state")
    if disk == "no_space":
        return [Problem("error", "outbox", "The filesystem is full (something else filled it): the outbox gave "
                                           "back its reserve and thins its oldest backlog to keep going.")]
    if d["disk_full"] or disk == "full":
        return [Problem("error", "outbox", "The disk is full: the oldest backlog is thinned to make room.")]
    capacity = d["capacity_rows"]
    if capacity and d["pending"] > 0.8 * capacity:
        return [
            Problem(
                "warning",
                "outbox",
                f"The outbox is {100 * d['pending'] // capacity} % full ({d['pending']} of {capacity} readings): "
                "older readings are being thinned.",
            )
        ]
    return []


def _starting(s: dict[str, Any]) -> list[Problem]:
    if s["ready"]:
        return []
    waiting = sum(1 for m in s["meters"] if m["state"] == "unknown")
    what = "opening the outbox" if s["delivery"] is None else f"{waiting} meter(s) not polled yet"
    return [Problem("error", "starting", f"The gateway is starting ({what}).")]


def _stalled(s: dict[str, Any]) -> list[Problem]:
    return [Problem("error", f"stalled:{what}", f"The gateway is stuck: {what}.") for what in s["stalled"]]


# Checks in the order the banner lists them: the installation first, the daemon itself last.
CHECKS: list[Callable[[dict[str, Any]], list[Problem]]] = [
    _starting, _meters, _broker, _ack, _outbox, _clock, _stalled
]


def problems(snapshot: dict[str, Any]) -> list[Problem]:
    found = [p for check in CHECKS for p in check(snapshot)]
    return sorted(found, key=lambda p: p.severity != "error")  # stable: errors first, table order kept


def status_line(snapshot: dict[str, Any]) -> str:
    """One line for ``systemctl status``: '3 meters online, 1 offline (m3); 0 readings waiting; broker
    connected'."""
    meters = snapshot["meters"]
    offline = [m["meter_id"] for m in meters if m["state"] == "offline"]
    online = sum(1 for m in meters if m["state"] == "online")
    waiting = sum(1 for m in meters if m["state"] == "unknown")
    parts = [f"{online} meter{'s' if online != 1 else ''} online"]
    if offline:
        shown = ", ".join(offline[:5]) + (f" and {len(offline) - 5} more" if len(offline) > 5 else "")
        parts[0] += f", {len(offline)} offline ({shown})"
    if waiting:
        parts[0] += f", {waiting} not polled yet"
    d = snapshot["delivery"]
    if d is not None:
        oldest = _ago(snapshot["now_ms"], d["oldest_pending_ms"])
        parts.append(
            f"{d['pending']} reading{'s' if d['pending'] != 1 else ''} waiting"
            + (f" (oldest {age_words(oldest)})" if d["pending"] and oldest is not None else "")
        )
        if d["connected"]:
            parts.append("broker connected")
        else:
            down = _ago(snapshot["now_ms"], d["link_since_ms"])
            parts.append("broker connecting" if d["connects"] == 0 else f"broker disconnected for {age_words(down)}")
    if snapshot["stalled"]:
        parts.append("STUCK: " + ", ".join(snapshot["stalled"]))
    return "; ".join(parts)


class ProgressWatch:
    """Remembers when each piece of work last moved; :meth:`stalled` names what has not for too long.

    Polling moves when a meter's poll count grows (a failed poll is progress too: a dead meter is a
    fact about the installation, not a stuck daemon); a meter may take ``3 x`` its current period
    before it counts as stuck, and never less than ``stall_after_s``. The outbox writer moves when it
    commits, and is not stuck while nothing waits for it or while the disk is full (a reported state).
    """

    def __init__(self, stall_after_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self._monotonic = monotonic
        self._polls: dict[str, tuple[int, float]] = {}
        self._stored: tuple[int, float] | None = None

    def stalled(
        self,
        meters: list[tuple[str, int, float]],
        *,
        stored: int | None,
        buffered: int,
        disk_full: bool,
    ) -> list[str]:
        """``meters``: (meter id, polls so far, current period in seconds)."""
        now = self._monotonic()
        out = []
        for meter_id, polls, period in meters:
            last = self._polls.get(meter_id)
            if last is None or last[0] != polls:
                self._polls[meter_id] = (polls, now)
            elif now - last[1] > max(self.stall_after_s, 3 * period):
                out.append(f"meter {meter_id} has not been polled for {age_words(now - last[1])}")
        if stored is not None:
            if self._stored is None or self._stored[0] != stored or buffered == 0 or disk_full:
                self._stored = (stored, now)
            elif now - self._stored[1] > self.stall_after_s:
                out.append(
                    f"the outbox writer has committed nothing for {age_words(now - self._stored[1])} "
                    f"with {buffered} samples waiting"
                )
        return out
