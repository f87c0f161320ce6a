"""``gridtokenx gateway run --config FILE``: the daemon — poll, sign, store, forward, until SIGTERM.

Exit codes: 0 after SIGTERM/SIGINT; 2 for anything the operator must fix first (configuration, key
file permissions, an outbox directory that cannot be created, an outbox written by a newer version) —
the systemd unit does not restart on 2; 1 for a runtime failure (e.g. the outbox became corrupt: the
restart that follows recovers it).

SIGTERM is always honoured within :data:`SHUTDOWN_DEADLINE_S`: the service stops within its own
deadlines (gateway.service), then any task that still has not ended (a library that swallowed its
cancellation) is left behind and the process exits 0 — the outbox is closed by then and every
committed reading is in it. A watchdog thread armed by the first signal exits the process (status 1)
if even that has not happened by the deadline, e.g. because the event loop itself is blocked. The
systemd unit's ``TimeoutStopSec`` must be above it (20 s).

Heavy imports (paho, pymodbus, aiosqlite) happen inside :func:`run`, so ``gridtokenx gateway --help``
stays quick. ``python -m gateway.cli_run --config FILE`` runs the same code without the umbrella command.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from gateway.config import GatewayConfig
    from gateway.keys import DeviceKey, KeySettings
    from gateway.mqtt_publisher import MqttSettings
    from gateway.outbox import OutboxSettings
    from gateway.status_page import StatusSettings
    from gateway.telemetry import TelemetrySettings

__all__ = ["SHUTDOWN_DEADLINE_S", "DaemonSettings", "add_arguments", "main", "resolve_sections", "run"]

log = logging.getLogger(__name__)

EXIT_FATAL = 1
EXIT_CONFIG = 2
DEFAULT_CONFIG = Path("/etc/gridtokenx/gateway.toml")
SHUTDOWN_DEADLINE_S = 15.0
"""From the first SIGTERM to the process's end, at most (the service needs 12 s in the worst case)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"gateway TOML file (default {DEFAULT_CONFIG})"
    )


class DaemonSettings:
    """The validated ``[mqtt]``, ``[outbox]``, ``[key]``, ``[telemetry]`` and (optional) ``[status]``
    sections."""

    def __init__(
        self,
        mqtt: MqttSettings,
        outbox: OutboxSettings,
        key: KeySettings,
        status: StatusSettings | None = None,
        telemetry: TelemetrySettings | None = None,
    ) -> None:
        from gateway.telemetry import TelemetrySettings

        self.mqtt, self.outbox, self.key, self.status = mqtt, outbox, key, status
        self.telemetry = telemetry if telemetry is not None else TelemetrySettings()


def resolve_sections(config: GatewayConfig, source: str = "<config>") -> DaemonSettings:
    """Validate ``[mqtt]``, ``[outbox]`` and ``[key]``; every problem in one ``ConfigError``.
    ``mqtt.gateway_id`` defaults to ``[gateway] id``."""
    from pydantic import ValidationError

    from gateway.errors import ConfigError
    from gateway.keys import KeySettings
    from gateway.mqtt_publisher import MqttSettings
    from gateway.outbox import OutboxSettings
    from gateway.status_page import StatusSettings
    from gateway.telemetry import TelemetrySettings
    from gridtokenx.batch import BatchFormatError, check_gateway_id

    problems: list[str] = []
    parsed: dict[str, Any] = {}
    sections: list[tuple[str, type[BaseModel]]] = [
        ("mqtt", MqttSettings), ("outbox", OutboxSettings), ("key", KeySettings), ("telemetry", TelemetrySettings)
    ]
    if config.status is not None:  # the status page is off unless configured
        sections.append(("status", StatusSettings))
    for name, model in sections:
        try:
            parsed[name] = model.model_validate(getattr(config, name) or {})
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join([name, *map(str, err["loc"])])
                message = (
                    "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
                )
                problems.append(f"{where}: {message}")
    mqtt = parsed.get("mqtt")
    if mqtt is not None:
        if mqtt.gateway_id is None:
            try:
                parsed["mqtt"] = mqtt.model_copy(update={"gateway_id": check_gateway_id(config.gateway.id)})
            except BatchFormatError as exc:
                problems.append(f"gateway.id: {exc} (it is the MQTT topic level of this gateway)")
        elif mqtt.gateway_id != config.gateway.id:
            problems.append(f"mqtt.gateway_id: {mqtt.gateway_id!r} differs from gateway.id {config.gateway.id!r}")
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise ConfigError(f"{source}: {count}\n" + "\n".join(f"  {p}" for p in problems))
    return DaemonSettings(**parsed)


def run(args: argparse.Namespace) -> int:
    from gateway.config import load_config
    from gateway.errors import ConfigError
    from gateway.keys import DeviceKeyError, load_key
    from gateway.logs import quiet_libraries
    from gateway.outbox import OutboxCorruptError, OutboxError, OutboxPathError, OutboxSchemaError
    from gridtokenx.mqtt import MqttError

    quiet_libraries()
    # A stop signal that arrives while we start (reading the configuration, opening the outbox) is
    # remembered and honoured as soon as the daemon runs, instead of killing it half-way.
    early: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signal.Signals(signum).name))
    try:
        config = load_config(args.config)
        settings = resolve_sections(config, str(args.config))
        key = load_key(settings.key.path)
    except (ConfigError, DeviceKeyError, MqttError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_serve(config, settings, key, early))
    except (OutboxSchemaError, OutboxPathError, MqttError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OutboxCorruptError, OutboxError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return 0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when it is installed (the gateway extra brings it): on the machines measured, waking the
    event loop is most of what a reading costs, and uvloop's loop does that with less CPU
    (bench/bench_gateway_cpu.py). ``GRIDTOKENX_EVENT_LOOP=asyncio`` keeps the standard loop."""
    if os.environ.get("GRIDTOKENX_EVENT_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class _Watchdog:
    """Armed by the first stop signal: if the process still runs ``deadline`` seconds later -- the event
    loop blocked, or cleanup stuck in a thread -- it exits the process from its own thread."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.deadline, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        log.critical("still running %g s after the stop signal: exiting now (committed readings are safe in "
                     "the outbox; samples not yet committed are lost)", self.deadline)
        logging.shutdown()
        os._exit(EXIT_FATAL)


async def _serve(
    config: GatewayConfig, settings: DaemonSettings, key: DeviceKey, early: list[str] | None = None
) -> None:
    from gateway.clock import SystemClockSource
    from gateway.poller import Poller
    from gateway.service import GatewayService
    from gateway.telemetry import MeterInfo

    watchdog = _Watchdog(SHUTDOWN_DEADLINE_S)
    async with Poller.from_config(config, clock_source=SystemClockSource()) as poller:

        def meter_info(meter_id: str) -> MeterInfo:
            status = poller.meter(meter_id).status()
            identity = status.identity
            if identity is None:
                return MeterInfo(meter_id, status.model)
            return MeterInfo(meter_id, status.model, identity.manufacturer, identity.product, identity.serial)

        service = GatewayService(
            key=key,
            mqtt=settings.mqtt,
            outbox=settings.outbox,
            epoch_path=settings.key.resolved_epoch_path(),
            samples=poller,
            telemetry=settings.telemetry,
            meter_info=meter_info,
        )
        loop = asyncio.get_running_loop()

        def on_signal(name: str) -> None:
            if not service.stopping:
                log.info("%s: stopping (within %g s)", name, SHUTDOWN_DEADLINE_S)
            watchdog.arm()
            service.stop()
            poller.stop()  # again on a second signal: cancel whatever swallowed the first cancellation

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal, sig.name)
        if early:
            on_signal(early[0])  # it came while we were starting
        try:
            if settings.status is None:
                await service.run()
            else:
                from gateway.status_data import snapshot
                from gateway.status_page import StatusPage, utc_now

                def page_data() -> dict[str, Any]:
                    return snapshot(
                        gateway_id=config.gateway.id,
                        key_fingerprint=key.fingerprint,
                        time_utc=utc_now(),
                        meters=poller.status(),
                        buses=poller.buses,
                        service=lambda: service.stats() if service.outbox is not None else None,
                    )

                async with StatusPage(settings.status, page_data):
                    await service.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    await _leave_no_task_behind()
    watchdog.disarm()


async def _leave_no_task_behind(within: float = 1.0) -> None:
    """The last resort: asyncio.run() would wait forever for a task that swallows its cancellation
    (CPython gh-86296), so give stragglers ``within`` seconds and then exit the process, status 0. The
    outbox is closed by now (every committed reading is in it) and the service has said goodbye."""
    me = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
    if not others:
        return
    for task in others:
        task.cancel()
    _, alive = await asyncio.wait(others, timeout=within)
    if alive:
        names = ", ".join(sorted(t.get_name() for t in alive))
        log.error("%d task(s) ignored cancellation (%s): exiting without them; the outbox is closed", len(alive),
                  names)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridtokenx gateway run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from gateway.logs import configure

    configure()
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
