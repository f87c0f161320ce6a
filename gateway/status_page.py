"""The technician's status page, ``/healthz`` and ``/metrics``, served by the daemon itself.

``[status] listen = "127.0.0.1:8080"`` turns it on (off unless configured). Four read-only resources,
all built from the supervisor's snapshot (:mod:`gateway.supervisor`), never from a query per request:

* ``/`` — one HTML page for a phone, readable in five seconds and without a network (no CDN, no web
  fonts, no script): a banner that says "All well" or names what is wrong, then one card per meter
  (state in colour, last values with units, age of the last good poll, errors in words), delivery
  (broker, last backend ack, readings waiting and the oldest one's age, thinned), and the gateway's
  identity (id, key fingerprint, software, uptime). It reloads itself.
* ``/status.json`` — the same snapshot for scripts.
* ``/healthz`` — ``200 ok`` or ``503`` with the problems, one per line. Never needs the token, so a
  monitor can ask it without a secret; it tells nothing a secret would protect.
* ``/metrics`` — Prometheus text format 0.0.4.

With ``[status] token`` (or ``token_file``, or the credential ``status__token``) every resource but
``/healthz`` wants ``Authorization: Bearer <token>`` — or ``?token=<token>`` for a browser. Only public
facts are shown: the key's fingerprint, never the key; the broker address, never its password.

The HTTP handling is deliberately tiny (GET only, one request per connection, ``Connection: close``)
and bounded on every side: a request head of at most 8 KiB that must arrive within 5 s, at most 64
connections served at once (more get ``503`` at once), responses written with a deadline. It is
fuzzed by tests/gateway/test_status_http.py. A web framework would cost the Pi more memory than the page
is worth.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, unquote

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from gateway.health import age_words

__all__ = ["StatusPage", "StatusPageError", "StatusSettings", "render_html", "render_metrics"]

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
HEAD_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 5.0
LINGER_S = 1.0
MAX_CLIENTS = 64


class StatusSettings(BaseModel):
    """``[status]`` in the gateway configuration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = "127.0.0.1:8080"
    # Bearer token for everything but /healthz. Prefer token_file or the credential status__token.
    token: SecretStr | None = None
    token_file: Path | None = None
    refresh_s: int = Field(default=10, ge=2, le=3600)  # the page reloads itself this often
    # What counts as wrong: not connected this long after start; no backend ack this long with
    # readings waiting.
    broker_grace_s: float = Field(default=30.0, ge=0)
    ack_late_s: float = Field(default=600.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8080, not {value!r}")
        return value

    @model_validator(mode="after")
    def _one_token(self) -> StatusSettings:
        if self.token is not None and self.token_file is not None:
            raise ValueError("token and token_file: give one of them")
        return self

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def read_token(self) -> str | None:
        if self.token_file is not None:
            try:
                token = self.token_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise OSError(exc.errno, f"cannot read status token file {self.token_file}: {exc.strerror}") from exc
            return token or None
        return self.token.get_secret_value() if self.token is not None and self.token.get_secret_value() else None


# --- rendering --------------------------------------------------------------------------------------

_STATE_WORDS = {"online": "ONLINE", "offline": "OFFLINE", "unknown": "STARTING"}


def _num(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}".replace(",", "\u2009")  # thin space: 4 821 417, unambiguous everywhere


def _ago(now_ms: int, then_ms: int | None) -> str:
    return "never" if then_ms is None else f"{age_words((now_ms - then_ms) / 1000)} ago"


def _meter_card(m: dict[str, Any], now_ms: int) -> str:
    e = html.escape
    state = m["state"]
    values = m["values"]
    shown = []
    if m["import_wh"] is not None:
        shown.append(("Import", f"{_num(m['import_wh'] / 1000, 3)} kWh"))
        shown.append(("Export", f"{_num(m['export_wh'] / 1000, 3)} kWh"))
    if m["power_w"] is not None:
        # The reading's sign convention (+ import, - export) in words: no minus sign to misread.
        direction = "export" if m["power_w"] < 0 else "import"
        shown.append(("Power", f"{_num(abs(m['power_w']))} W {direction}"))
    volts = values.get("voltage_l1", values.get("voltage_avg"))
    if volts is not None:
        shown.append(("Voltage", f"{_num(volts, 1)} V"))
    if values.get("frequency") is not None:
        shown.append(("Frequency", f"{_num(values['frequency'], 2)} Hz"))
    vals = "".join(f"<div><span>{e(k)}</span><b>{e(v)}</b></div>" for k, v in shown) or (
        "<div><span>Values</span><b>none yet</b></div>"
    )
    stale = state != "online" and m["last_success_ms"] is not None
    caption = f'<p class="caption">Last known values, {_ago(now_ms, m["last_success_ms"])}:</p>' if stale else ""
    errors = m["failures"]
    every = _num(m["interval_s"], 0 if m["interval_s"] >= 1 else 2)
    lines = [
        f"Last good poll {_ago(now_ms, m['last_success_ms'])} · every {every} s",
        f"{errors} failed poll{'s' if errors != 1 else ''} of {m['polls']}",
    ]
    trouble = ""
    if m["last_error"] and (state == "offline" or m["consecutive_failures"]):
        trouble = f'<p class="err">Last error ({_ago(now_ms, m["last_failure_ms"])}): {e(m["last_error"])}</p>'
    if m["problems"]:
        trouble += f'<p class="err">Implausible: {e("; ".join(m["problems"]))}</p>'
    return (
        f'<article class="meter {e(state)}"><h3>{e(m["meter_id"])}<span class="pill">'
        f"{_STATE_WORDS.get(state, e(state.upper()))}</span></h3>"
        f'<p class="where">{e(m["model"])} · bus {e(m["bus"])} · unit {m["unit"]}</p>'
        f'{caption}<div class="vals{" stale" if stale else ""}">{vals}</div>'
        f'<p class="small">{" · ".join(e(x) for x in lines)}</p>{trouble}</article>'
    )


def _rows(pairs: list[tuple[str, str, str]]) -> str:
    return "".join(
        f'<tr><th>{html.escape(k)}</th><td class="{cls}">{html.escape(v)}</td></tr>' for k, v, cls in pairs
    )


def render_html(s: dict[str, Any], refresh_s: int = 10) -> str:
    e = html.escape
    now = s["now_ms"]
    problems = s["problems"]
    errors = [p for p in problems if p["severity"] == "error"]
    if not problems:
        banner = f'<header class="banner ok"><b>✓ All well</b><p>{e(s["status_line"])}</p></header>'
    else:
        cls = "bad" if errors else "warn"
        title = f"⚠ {len(problems)} problem{'s' if len(problems) != 1 else ''}"
        items = "".join(f'<li class="{e(p["severity"])}">{e(p["text"])}</li>' for p in problems)
        banner = f'<header class="banner {cls}"><b>{title}</b><ul>{items}</ul></header>'
    meters = "".join(_meter_card(m, now) for m in s["meters"])
    d = s["delivery"]
    if d is None:
        delivery = "<p>The outbox is opening…</p>"
    else:
        link = f"connected · {d['broker']}" if d["connected"] else f"NOT connected · {d['broker']}"
        since = _ago(now, d["link_since_ms"])
        oldest = (
            f"{age_words((now - d['oldest_pending_ms']) / 1000)} old"
            if d["pending"] and d["oldest_pending_ms"]
            else "-"
        )
        delivery = "<table>" + _rows(
            [
                ("Broker", f"{link} (since {since})", "good" if d["connected"] else "bad"),
                ("Last backend ack", _ago(now, d["last_ack_ms"]), ""),
                ("Readings waiting", _num(d["pending"]), "bad" if d["pending"] > 0.8 * d["capacity_rows"] else ""),
                ("Oldest waiting", oldest, ""),
                ("Thinned (outbox full)", _num(d["thinned"]), "warn" if d["thinned"] else ""),
                ("Signed / acknowledged", f"{_num(d['signed'])} / {_num(d['acked'])}", ""),
                ("Resent", _num(d["resent"]), ""),
                ("Outbox on disk", f"{_num((d['outbox_bytes'] or 0) / 1e6, 1)} of {_num(d['max_bytes'] / 1e6)} MB", ""),
            ]
        ) + "</table>"
    clock = {True: ("synchronised (NTP)", "good"), False: ("NOT synchronised", "bad"), None: ("unknown", "")}[
        s["clock"]["synchronised"]
    ]
    identity = "<table>" + _rows(
        [
            ("Gateway id", s["gateway_id"], ""),
            ("Key fingerprint", s["key_fingerprint"], "mono"),
            ("Software", s["software"], ""),
            ("Up for", age_words(s["uptime_s"]), ""),
            ("Clock", clock[0], clock[1]),
            ("Memory", f"{_num(s['process']['rss_bytes'] / 1e6, 1)} MB", ""),
        ]
    ) + "</table>"
    made = time.strftime("%H:%M:%S UTC", time.gmtime(now / 1000))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><meta http-equiv="refresh" content="{refresh_s}">
<title>{"✓" if not errors else "⚠"} Gateway {e(s["gateway_id"])}</title><style>{_CSS}</style></head><body>
{banner}
<h2>Meters ({len(s["meters"])})</h2>{meters}
<h2>Delivery to the backend</h2>{delivery}
<h2>This gateway</h2>{identity}
<footer>Page made {made} · reloads every {refresh_s} s · <a href="status.json">status.json</a></footer>
</body></html>
"""


_CSS = """
*{box-sizing:border-box}body{margin:0 auto;max-width:44rem;padding:.5rem;font:16px/1.35 system-ui,sans-serif;
color:#111;background:#f4f4f4}h2{font-size:1.05rem;margin:1rem 0 .4rem}
.banner{padding:.7rem .8rem;border-radius:.5rem;color:#fff;font-size:1.05rem}.banner b{font-size:1.25rem}
.banner p{margin:.3rem 0 0}.banner ul{margin:.4rem 0 0;padding-left:1.2rem}.banner li{margin:.25rem 0}
.banner.ok{background:#16803c}.banner.bad{background:#b91c1c}.banner.warn{background:#b45309}
.meter{background:#fff;border-left:.45rem solid #999;border-radius:.4rem;padding:.45rem .6rem;margin:.45rem 0}
.meter.online{border-color:#16a34a}.meter.offline{border-color:#dc2626}.meter.unknown{border-color:#a3a3a3}
.meter h3{margin:0;font-size:1.1rem;display:flex;justify-content:space-between;align-items:center}
.pill{font-size:.8rem;padding:.1rem .5rem;border-radius:1rem;color:#fff;background:#737373}
.online .pill{background:#16a34a}.offline .pill{background:#dc2626}
.where,.small{margin:.15rem 0;color:#555;font-size:.85rem}
.vals{display:grid;grid-template-columns:repeat(auto-fill,minmax(8.5rem,1fr));gap:.3rem .8rem;margin:.35rem 0}
.vals div{display:flex;flex-direction:column}.vals span{color:#555;font-size:.8rem}.vals b{font-size:1.1rem}
.vals.stale b{color:#777;font-weight:normal}.caption{margin:.3rem 0 0;color:#555;font-size:.8rem}
.err{margin:.25rem 0 0;color:#b91c1c;font-size:.9rem;overflow-wrap:anywhere}
table{width:100%;background:#fff;border-radius:.4rem;border-collapse:collapse}
th,td{text-align:left;padding:.35rem .6rem;border-bottom:1px solid #eee;vertical-align:top}
th{font-weight:normal;color:#555;width:42%}td{overflow-wrap:anywhere}
td.good{color:#15803d;font-weight:bold}td.bad{color:#b91c1c;font-weight:bold}td.warn{color:#b45309}
td.mono{font-family:ui-monospace,monospace}footer{margin:1rem 0;color:#666;font-size:.8rem}
""".replace("\n", "")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(s: dict[str, Any]) -> str:
    """Prometheus text exposition format 0.0.4."""
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float | int | None]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is not None:
                out.append(f"{name}{labels} {value}")

    meters = s["meters"]

    def per_meter(key: str) -> list[tuple[str, float | int | None]]:
        return [(f'{{meter="{_label(m["meter_id"])}"}}', m[key]) for m in meters]

    metric(
        "gridtokenx_build_info", "gauge", "Software version and gateway id.",
        [(f'{{version="{_label(s["software"])}",gateway_id="{_label(s["gateway_id"])}"}}', 1)],
    )
    metric(
        "gridtokenx_meter_up", "gauge", "1 while the meter answers, 0 when offline, absent before its first poll.",
        [(f'{{meter="{_label(m["meter_id"])}"}}', {"online": 1, "offline": 0}.get(m["state"])) for m in meters],
    )
    metric("gridtokenx_meter_polls_total", "counter", "Poll cycles since start, good or failed.", per_meter("polls"))
    metric("gridtokenx_meter_poll_failures_total", "counter", "Failed poll cycles since start.", per_meter("failures"))
    metric(
        "gridtokenx_meter_implausible_total", "counter", "Readings flagged as implausible since start.",
        per_meter("flagged"),
    )
    metric(
        "gridtokenx_meter_last_success_timestamp_seconds", "gauge", "Unix time of the last good poll.",
        [
            (f'{{meter="{_label(m["meter_id"])}"}}', None if ms is None else ms / 1000)
            for m in meters
            for ms in [m["last_success_ms"]]
        ],
    )
    d = s["delivery"]
    if d is not None:
        now = s["now_ms"]
        for name, key, help_text in (
            ("gridtokenx_readings_signed_total", "signed", "Readings signed and committed to the outbox (one step)."),
            ("gridtokenx_readings_sent_total", "sent", "Readings published to the broker, resends included."),
            ("gridtokenx_readings_acked_total", "acked", "Readings the backend acknowledged."),
            ("gridtokenx_readings_resent_total", "resent", "Readings published again (no ack in time, reconnect)."),
            ("gridtokenx_readings_rejected_total", "rejected", "Readings the backend rejected (quarantined)."),
            ("gridtokenx_readings_thinned_total", "thinned", "Readings dropped from an overfull outbox, ever."),
            ("gridtokenx_samples_dropped_total", "samples_dropped", "Polled samples dropped before signing."),
            ("gridtokenx_mqtt_reconnects_total", "reconnects", "Broker connections after the first one."),
        ):
            metric(name, "counter", help_text, [("", d[key])])
        metric("gridtokenx_outbox_pending_readings", "gauge", "Readings waiting for the backend.", [("", d["pending"])])
        metric("gridtokenx_outbox_bytes", "gauge", "Bytes the outbox database uses.", [("", d["outbox_bytes"])])
        oldest = d["oldest_pending_ms"]
        metric(
            "gridtokenx_outbox_oldest_age_seconds", "gauge", "Age of the oldest reading waiting (0: none waits).",
            [("", 0 if not d["pending"] or oldest is None else (now - oldest) / 1000)],
        )
        metric("gridtokenx_mqtt_connected", "gauge", "1 while connected to the broker.", [("", int(d["connected"]))])
        metric(
            "gridtokenx_backend_last_ack_timestamp_seconds", "gauge", "Unix time of the backend's latest ack.",
            [("", None if d["last_ack_ms"] is None else d["last_ack_ms"] / 1000)],
        )
    synced = s["clock"]["synchronised"]
    metric(
        "gridtokenx_clock_synchronised", "gauge", "1 when the kernel says NTP disciplines the clock.",
        [("", None if synced is None else int(synced))],
    )
    metric("gridtokenx_healthy", "gauge", "1 when /healthz answers 200.", [("", int(s["healthy"]))])
    rss = s["process"]["rss_bytes"]
    metric("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", [("", rss)])
    metric("process_start_time_seconds", "gauge", "Start time of the process since the Unix epoch.",
           [("", s["started_ms"] / 1000)])
    return "\n".join(out) + "\n"


# --- the server -------------------------------------------------------------------------------------


class StatusPageError(OSError):
    """The page cannot listen (address in use, not allowed): an operator's fix, like a config error."""


Response = tuple[str, str, bytes]
_TEXT = "text/plain; charset=utf-8"


class StatusPage:
    """An async context manager serving ``snapshot()`` (see :mod:`gateway.supervisor`)."""

    def __init__(self, settings: StatusSettings, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.settings = settings
        self._snapshot = snapshot
        self._token = settings.read_token()
        self._server: asyncio.Server | None = None
        self._clients = 0
        self._cache: tuple[dict[str, Any], dict[bytes, Response]] | None = None
        self.port: int | None = None

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.settings.host, self.settings.port, limit=MAX_HEAD, backlog=256
            )
        except OSError as exc:
            raise StatusPageError(
                exc.errno, f"status page cannot listen on {self.settings.listen}: {exc.strerror}"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        token = " (bearer token required)" if self._token else ""
        log.info("status page on http://%s:%d/%s", self.settings.host, self.port, token)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._clients >= MAX_CLIENTS:
            # Answer at once rather than queue: a flood must not hold memory or starve the poller.
            response: Response = ("503 Service Unavailable", _TEXT, b"busy: too many connections\n")
            await self._send(writer, response, reader=reader, extra="Retry-After: 1\r\n")
            return
        self._clients += 1
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
                response = self._respond(head)
            except asyncio.LimitOverrunError:
                response = ("431 Request Header Fields Too Large", _TEXT, b"request head too large\n")
            except TimeoutError:
                response = ("408 Request Timeout", _TEXT, b"request head not received in time\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            await self._send(writer, response, reader=reader, allow=response[0].startswith("405"))
        finally:
            self._clients -= 1

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        reader: asyncio.StreamReader,
        allow: bool = False,
        extra: str = "",
    ) -> None:
        status, ctype, body = response
        if allow:
            extra += "Allow: GET\r\n"
        if status.startswith("401"):
            extra += 'WWW-Authenticate: Bearer realm="gridtokenx gateway"\r\n'
        try:
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                f"{extra}Connection: close\r\n\r\n".encode()
                + body
            )
            await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
            # A lingering close: closing a socket with unread input sends RST, which can destroy the
            # response before the client reads it (a refused or oversized request). Say we are done
            # (FIN), let the client read and close, discard what it still sends, for at most a second.
            if writer.can_write_eof():
                writer.write_eof()
            await asyncio.wait_for(reader.read(MAX_HEAD * 8), LINGER_S)
        except (ConnectionError, TimeoutError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    def _authorised(self, head: bytes, query: dict[str, list[str]]) -> bool:
        if self._token is None:
            return True
        given: str | None = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                scheme, _, credential = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    given = credential.strip().decode("latin-1")
        if given is None and query.get("token"):
            given = query["token"][0]
        return given is not None and hmac.compare_digest(given.encode(), self._token.encode())

    def _respond(self, head: bytes) -> Response:
        request_line = head.split(b"\r\n", 1)[0]
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return "400 Bad Request", _TEXT, b"bad request\n"
        method, target = parts[0], parts[1]
        if method != b"GET":
            return "405 Method Not Allowed", _TEXT, b"the status page is read-only: GET only\n"
        path, _, query_text = target.partition(b"?")
        try:
            query = parse_qs(query_text.decode("ascii"), max_num_fields=8)
        except (UnicodeDecodeError, ValueError):
            return "400 Bad Request", _TEXT, b"bad query\n"
        path = unquote(path.decode("latin-1")).encode("latin-1", "replace")
        if path not in (b"/", b"/status.json", b"/healthz", b"/metrics"):
            return "404 Not Found", _TEXT, b"not found: try /, /status.json, /healthz or /metrics\n"
        snapshot = self._snapshot()
        if path == b"/healthz":
            return self._healthz(snapshot)
        if not self._authorised(head, query):
            return "401 Unauthorized", _TEXT, b"a bearer token is required (Authorization: Bearer ... or ?token=...)\n"
        return self._rendered(snapshot, path)

    @staticmethod
    def _healthz(s: dict[str, Any]) -> Response:
        errors = [p["text"] for p in s["problems"] if p["severity"] == "error"]
        if not errors:
            return "200 OK", _TEXT, f"ok: {s['status_line']}\n".encode()
        return "503 Service Unavailable", _TEXT, ("\n".join(errors) + "\n").encode()

    def _rendered(self, s: dict[str, Any], path: bytes) -> Response:
        """Rendered once per snapshot and kept: many clients, one rendering."""
        if self._cache is None or self._cache[0] is not s:
            self._cache = (s, {})
        cached = self._cache[1]
        if path not in cached:
            if path == b"/status.json":
                cached[path] = ("200 OK", "application/json", json.dumps(s, indent=1).encode())
            elif path == b"/metrics":
                cached[path] = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render_metrics(s).encode())
            else:
                body = render_html(s, self.settings.refresh_s).encode()
                cached[path] = ("200 OK", "text/html; charset=utf-8", body)
        return cached[path]
