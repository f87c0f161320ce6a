"""``gridtokenx gateway run --config FILE``: the daemon — poll, sign, store, forward, until SIGTERM.

Exit codes: 0 after SIGTERM/SIGINT; 2 for anything the operator must fix first (configuration, key
file permissions, an outbox written by a newer version, a status page port in use) — the systemd unit
does not restart on 2; 1 for a runtime failure (e.g. the outbox became corrupt: the restart that
follows recovers it).

Under systemd (``Type=notify``): ``READY=1`` once the outbox is open and every meter has been polled
once; ``STATUS=`` lines as things change; ``WATCHDOG=1`` while polling and the outbox writer make
progress (:mod:`gateway.supervisor`). ``SIGHUP`` (``systemctl reload``) re-reads the configuration: a
valid, changed one is applied by stopping polling and delivery in order (everything polled is
committed) and starting them again with it; an invalid one is refused with the reason in the log and
in ``STATUS=``, and the running configuration stays.

SIGTERM is always honoured within :data:`SHUTDOWN_DEADLINE_S`: the service stops within its own
deadlines (gateway.service), then any task that still has not ended (a library that swallowed its
cancellation, CPython gh-86296) is left behind and the process exits 0 -- the outbox is closed by then
and every committed reading is in it. A watchdog thread armed by the first signal exits the process
(status 1) if even that has not happened by the deadline, e.g. because the event loop itself is blocked.
The systemd unit's ``TimeoutStopSec`` is a little above it (20 s; tests/systemd/test_unit.py). A stop
signal that arrives while the daemon starts is remembered and honoured as soon as it runs.

Heavy imports (paho, pymodbus, aiosqlite) happen inside :func:`run`, so ``gridtokenx gateway --help``
stays quick. ``python -m gateway.cli_run --config FILE`` runs the same code without the umbrella command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.clock import SystemClockSource
    from gateway.config import GatewayConfig
    from gateway.keys import DeviceKey
    from gateway.poller import Poller
    from gateway.sd_notify import Notifier
    from gateway.service import GatewayService

__all__ = ["SHUTDOWN_DEADLINE_S", "add_arguments", "event_loop_factory", "main", "run"]

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


def load_checked(path: Path) -> tuple[GatewayConfig, DeviceKey]:
    """The configuration and the key it names, with every file the daemon will read checked now
    (password and token files), so a bad one is refused before anything stops or starts."""
    from gateway.config import load_config
    from gateway.keys import load_key
    from gateway.mqtt_publisher import load_backend_key

    config = load_config(path)
    key = load_key(config.key.path)
    load_backend_key(config.mqtt.backend_key_file)  # acks are believed only with its signature
    config.mqtt.read_password()
    if config.status is not None:
        config.status.read_token()
    return config, key


def run(args: argparse.Namespace) -> int:
    from gateway.errors import ConfigError
    from gateway.keys import DeviceKeyError
    from gateway.logs import quiet_libraries
    from gateway.mqtt_publisher import BackendKeyError
    from gateway.outbox import OutboxCorruptError, OutboxError, OutboxPathError, OutboxSchemaError
    from gateway.status_page import StatusPageError
    from gridtokenx.mqtt import MqttError

    quiet_libraries()
    # A stop signal that arrives while we start (reading the configuration, opening the outbox) is
    # remembered and honoured as soon as the daemon runs, instead of killing it half-way.
    early: list[str] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: early.append(signal.Signals(signum).name))
    try:
        config, key = load_checked(args.config)
    except (ConfigError, DeviceKeyError, BackendKeyError, MqttError, OSError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from gateway.memory import limit_arenas

    limit_arenas()  # before paho's and aiosqlite's threads exist
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(_daemon(args.config, config, key, early))
    except (OutboxSchemaError, OutboxPathError, MqttError, StatusPageError) as exc:
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


class _Daemon:
    """Owns the signals and the notifier across configuration generations."""

    def __init__(self, path: Path, notifier: Notifier, clock: SystemClockSource) -> None:
        self.path = path
        self.notifier = notifier
        self.clock = clock
        self.started_ms = int(time.time() * 1000)
        self.stop = asyncio.Event()
        self.reload = asyncio.Event()
        self.service: GatewayService | None = None
        self.poller: Poller | None = None
        self.watchdog = _Watchdog(SHUTDOWN_DEADLINE_S)

    def on_stop_signal(self, name: str) -> None:
        if not self.stop.is_set():
            log.info("%s: stopping (within %g s)", name, SHUTDOWN_DEADLINE_S)
        self.watchdog.arm()
        self.stop.set()
        if self.poller is not None:
            self.poller.stop()  # again on a second signal: cancel whatever swallowed the first cancellation
    def try_reload(self, config: GatewayConfig, key: DeviceKey) -> tuple[GatewayConfig, DeviceKey] | None:
        """The new configuration if it is valid and differs; None (logged, and said in STATUS) if not."""
        from gateway.errors import ConfigError
        from gateway.keys import DeviceKeyError
        from gridtokenx.mqtt import MqttError

        try:
            new_config, new_key = load_checked(self.path)
        except (ConfigError, DeviceKeyError, MqttError, OSError) as exc:
            first = str(exc).splitlines()
            log.error("configuration reload refused, the running configuration stays: %s", exc)
            reason = " ".join(line.strip() for line in first[:3])
            self.notifier.ready(f"configuration reload REFUSED, running one kept: {reason}")
            return None
        if new_config == config and new_key.public_key == key.public_key:
            log.info("configuration reloaded: unchanged")
            self.notifier.ready("configuration reloaded: unchanged")
            return None
        log.warning("configuration changed: restarting polling and delivery with it (nothing polled is lost)")
        return new_config, new_key

    async def generation(self, config: GatewayConfig, key: DeviceKey) -> tuple[GatewayConfig, DeviceKey] | None:
        """Poll, sign, store and forward with one configuration until SIGTERM (returns None) or a valid
        new configuration (returns it, after everything polled has been committed)."""
        from gateway.poller import Poller
        from gateway.service import GatewayService
        from gateway.status_page import StatusPage
        from gateway.supervisor import Supervisor
        from gateway.telemetry import MeterInfo

        async with Poller.from_config(config, clock_source=self.clock) as poller, contextlib.AsyncExitStack() as stack:

            def meter_info(meter_id: str) -> MeterInfo:
                status = poller.meter(meter_id).status()
                identity = status.identity
                if identity is None:
                    return MeterInfo(meter_id, status.model)
                return MeterInfo(meter_id, status.model, identity.manufacturer, identity.product, identity.serial)

            service = GatewayService(
                key=key,
                mqtt=config.mqtt,
                outbox=config.outbox,
                epoch_path=config.key.resolved_epoch_path(),
                samples=poller,  # pushed straight into the service's buffer
                telemetry=config.telemetry,
                meter_info=meter_info,
            )
            self.service = service
            self.poller = poller
            supervisor = Supervisor(
                config=config, key=key, poller=poller, service=service, notifier=self.notifier,
                clock=self.clock, started_ms=self.started_ms,
            )
            if config.status is not None:
                await stack.enter_async_context(StatusPage(config.status, supervisor.snapshot))
            running = asyncio.create_task(service.run(), name="service")
            watching = asyncio.create_task(supervisor.run(), name="supervisor")
            next_config: tuple[GatewayConfig, DeviceKey] | None = None
            try:
                while next_config is None and not self.stop.is_set():
                    stop_wait = asyncio.create_task(self.stop.wait())
                    reload_wait = asyncio.create_task(self.reload.wait())
                    try:
                        await asyncio.wait(
                            {running, watching, stop_wait, reload_wait}, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        stop_wait.cancel()
                        reload_wait.cancel()
                    for task in (running, watching):
                        if task.done():
                            task.result()  # raises what stopped it
                            if task is running:
                                return None  # the sample source ended (not in production)
                    if self.reload.is_set() and not self.stop.is_set():
                        self.reload.clear()
                        self.notifier.reloading()
                        next_config = self.try_reload(config, key)
            finally:
                if self.stop.is_set():
                    self.notifier.stopping()
                service.stop()
                with contextlib.suppress(asyncio.CancelledError):
                    await running
                watching.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watching
                self.service = None
                self.poller = None
            return next_config


async def _daemon(path: Path, config: GatewayConfig, key: DeviceKey, early: list[str] | None = None) -> None:
    from gateway import fault_hooks
    from gateway.clock import SystemClockSource
    from gateway.sd_notify import Notifier

    notifier = Notifier.from_environment()
    daemon = _Daemon(path, notifier, SystemClockSource())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.on_stop_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload.set)
    fault_hooks.install(loop, lambda: daemon.service)
    if early:
        daemon.on_stop_signal(early[0])  # it came while we were starting
    try:
        current: tuple[GatewayConfig, DeviceKey] | None = (config, key)
        while current is not None:
            current = await daemon.generation(*current)
    finally:
        notifier.close()
    await _leave_no_task_behind()
    daemon.watchdog.disarm()


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
