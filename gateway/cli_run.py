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
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.clock import SystemClockSource
    from gateway.config import GatewayConfig
    from gateway.keys import DeviceKey
    from gateway.sd_notify import Notifier
    from gateway.service import GatewayService

__all__ = ["add_arguments", "main", "run"]

log = logging.getLogger(__name__)

EXIT_FATAL = 1
EXIT_CONFIG = 2
DEFAULT_CONFIG = Path("/etc/gridtokenx/gateway.toml")


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
    from gateway.mqtt_publisher import BackendKeyError
    from gateway.outbox import OutboxCorruptError, OutboxError, OutboxSchemaError
    from gateway.status_page import StatusPageError
    from gridtokenx.mqtt import MqttError

    try:
        config, key = load_checked(args.config)
    except (ConfigError, DeviceKeyError, BackendKeyError, MqttError, OSError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    from gateway.memory import limit_arenas

    limit_arenas()  # before paho's and aiosqlite's threads exist
    try:
        asyncio.run(_daemon(args.config, config, key))
    except (OutboxSchemaError, MqttError, StatusPageError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OutboxCorruptError, OutboxError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return 0


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

        async with Poller.from_config(config, clock_source=self.clock) as poller, contextlib.AsyncExitStack() as stack:
            service = GatewayService(
                key=key,
                mqtt=config.mqtt,
                outbox=config.outbox,
                epoch_path=config.key.resolved_epoch_path(),
                samples=poller.samples(),
            )
            self.service = service
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
            return next_config


async def _daemon(path: Path, config: GatewayConfig, key: DeviceKey) -> None:
    from gateway import fault_hooks
    from gateway.clock import SystemClockSource
    from gateway.sd_notify import Notifier

    notifier = Notifier.from_environment()
    daemon = _Daemon(path, notifier, SystemClockSource())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, daemon.stop.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload.set)
    fault_hooks.install(loop, lambda: daemon.service)
    try:
        current: tuple[GatewayConfig, DeviceKey] | None = (config, key)
        while current is not None:
            current = await daemon.generation(*current)
    finally:
        notifier.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridtokenx gateway run", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, os.environ.get("GRIDTOKENX_LOG_LEVEL", "INFO").upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
