"""The field technician's status page: what each meter, the outbox and the MQTT link are doing now.

Served by the daemon itself (``[status] listen = "127.0.0.1:8080"``; off unless configured) as a small
HTML page that refreshes itself and as ``/status.json`` for scripts. It is read-only and shows only
public facts: the device key's fingerprint, never the key. It binds to loopback by default — a
technician reaches it on the box or through an SSH tunnel; exposing it wider is a deliberate choice.

The HTTP handling is the smallest that browsers and curl need (GET only, ``Connection: close``, request
head capped in size and time) — a web framework would cost the Pi more memory than the page is worth.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["StatusPage", "StatusSettings"]

log = logging.getLogger(__name__)

_MAX_HEAD = 8 * 1024
_HEAD_TIMEOUT_S = 5.0


class StatusSettings(BaseModel):
    """``[status]`` in the gateway configuration."""

    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:8080"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen must be HOST:PORT, e.g. 127.0.0.1:8080, not {value!r}")
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])


def _plain(value: Any) -> Any:
    """Dataclasses, enums and tuples → JSON-ready values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "name"):  # an Enum
        return value.value if isinstance(value.value, str | int) else value.name
    if isinstance(value, float) and value != value:  # NaN has no JSON form
        return None
    return value


class StatusPage:
    """An async context manager serving ``snapshot()`` at ``/`` (HTML) and ``/status.json``."""

    def __init__(self, settings: StatusSettings, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.settings = settings
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None
        self.port: int | None = None

    async def __aenter__(self) -> Self:
        try:
            self._server = await asyncio.start_server(self._serve, self.settings.host, self.settings.port)
        except OSError as exc:
            raise OSError(exc.errno, f"status page cannot listen on {self.settings.listen}: {exc.strerror}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("status page on http://%s:%d/", self.settings.host, self.port)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _HEAD_TIMEOUT_S)
            status, ctype, body = self._respond(head)
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            status, ctype, body = "400 Bad Request", "text/plain", b"bad request\n"
        try:
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def _respond(self, head: bytes) -> tuple[str, str, bytes]:
        if len(head) > _MAX_HEAD:
            return "431 Request Header Fields Too Large", "text/plain", b"request head too large\n"
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3:
            return "400 Bad Request", "text/plain", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method != b"GET":
            return "405 Method Not Allowed", "text/plain", b"the status page is read-only: GET only\n"
        if target not in (b"/", b"/status.json"):
            return "404 Not Found", "text/plain", b"not found: try / or /status.json\n"
        snapshot = _plain(self._snapshot())
        if target == b"/status.json":
            return "200 OK", "application/json", json.dumps(snapshot, indent=2).encode()
        return "200 OK", "text/html; charset=utf-8", _html(snapshot).encode()


def _html(s: dict[str, Any]) -> str:
    def cell(value: Any) -> str:
        return f"<td>{html.escape('' if value is None else str(value))}</td>"

    rows = []
    for m in s.get("meters", []):
        last = m.get("last_sample") or {}
        rows.append(
            "<tr>" + "".join(cell(v) for v in (
                m["meter_id"], m["model"], f"{m['bus']}/{m['unit']}", m["state"], last.get("import_wh"),
                last.get("export_wh"), last.get("power_w"), "; ".join(last.get("problems") or []) or None,
                f"{m['successes']}/{m['polls']}", m["last_error"],
            )) + "</tr>"
        )
    service = s.get("service") or {}
    facts = "".join(
        f"<tr><th>{html.escape(k)}</th>{cell(v)}</tr>" for k, v in service.items() if not isinstance(v, dict)
    )
    publisher = "".join(
        f"<tr><th>{html.escape(k)}</th>{cell(v)}</tr>" for k, v in (service.get("publisher") or {}).items()
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>GridTokenX gateway {html.escape(str(s.get('gateway_id')))}</title>
<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style></head><body>
<h1>Gateway {html.escape(str(s.get('gateway_id')))}</h1>
<p>key fingerprint {html.escape(str(s.get('key_fingerprint')))} · page made {html.escape(str(s.get('time_utc')))}</p>
<h2>Meters</h2><table><tr><th>meter</th><th>model</th><th>bus/unit</th><th>state</th><th>import Wh</th>
<th>export Wh</th><th>power W</th><th>problems</th><th>good/polls</th><th>last error</th></tr>
{''.join(rows)}</table>
<h2>Outbox</h2><table>{facts}</table><h2>MQTT</h2><table>{publisher}</table></body></html>
"""


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
