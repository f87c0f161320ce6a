"""``gridtokenx gateway run --config FILE``: the daemon — poll, sign, store, forward, until SIGTERM.

Exit codes: 0 after SIGTERM/SIGINT; 2 for anything the operator must fix first (configuration, key
file permissions, an outbox written by a newer version) — the systemd unit does not restart on 2;
1 for a runtime failure (e.g. the outbox became corrupt: the restart that follows recovers it).

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
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import BaseModel

    from gateway.config import GatewayConfig
    from gateway.keys import DeviceKey, KeySettings
    from gateway.mqtt_publisher import MqttSettings
    from gateway.outbox import OutboxSettings
    from gateway.status_page import StatusSettings

__all__ = ["DaemonSettings", "add_arguments", "main", "resolve_sections", "run"]

log = logging.getLogger(__name__)

EXIT_FATAL = 1
EXIT_CONFIG = 2
DEFAULT_CONFIG = Path("/etc/gridtokenx/gateway.toml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help=f"gateway TOML file (default {DEFAULT_CONFIG})"
    )


class DaemonSettings:
    """The validated ``[mqtt]``, ``[outbox]``, ``[key]`` and (optional) ``[status]`` sections."""

    def __init__(
        self, mqtt: MqttSettings, outbox: OutboxSettings, key: KeySettings, status: StatusSettings | None = None
    ) -> None:
        self.mqtt, self.outbox, self.key, self.status = mqtt, outbox, key, status


def resolve_sections(config: GatewayConfig, source: str = "<config>") -> DaemonSettings:
    """Validate ``[mqtt]``, ``[outbox]`` and ``[key]``; every problem in one ``ConfigError``.
    ``mqtt.gateway_id`` defaults to ``[gateway] id``."""
    from pydantic import ValidationError

    from gateway.errors import ConfigError
    from gateway.keys import KeySettings
    from gateway.mqtt_publisher import MqttSettings
    from gateway.outbox import OutboxSettings
    from gateway.status_page import StatusSettings
    from gridtokenx.batch import BatchFormatError, check_gateway_id

    problems: list[str] = []
    parsed: dict[str, Any] = {}
    sections: list[tuple[str, type[BaseModel]]] = [
        ("mqtt", MqttSettings), ("outbox", OutboxSettings), ("key", KeySettings)
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
    from gateway.mqtt_publisher import BackendKeyError, load_backend_key
    from gateway.outbox import OutboxCorruptError, OutboxError, OutboxSchemaError
    from gridtokenx.mqtt import MqttError

    try:
        config = load_config(args.config)
        settings = resolve_sections(config, str(args.config))
        key = load_key(settings.key.path)
        load_backend_key(settings.mqtt.backend_key_file)  # acks are believed only with its signature
    except (ConfigError, DeviceKeyError, BackendKeyError, MqttError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(_serve(config, settings, key))
    except (OutboxSchemaError, MqttError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (OutboxCorruptError, OutboxError) as exc:
        print(f"gridtokenx gateway run: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return 0


async def _serve(config: GatewayConfig, settings: DaemonSettings, key: DeviceKey) -> None:
    from gateway.clock import SystemClockSource
    from gateway.poller import Poller
    from gateway.service import GatewayService

    async with Poller.from_config(config, clock_source=SystemClockSource()) as poller:
        service = GatewayService(
            key=key,
            mqtt=settings.mqtt,
            outbox=settings.outbox,
            epoch_path=settings.key.resolved_epoch_path(),
            samples=poller.samples(),
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        if settings.status is None:
            await service.run()
            return
        from gateway.status_page import StatusPage, utc_now

        def snapshot() -> dict[str, Any]:
            return {
                "gateway_id": config.gateway.id,
                "key_fingerprint": key.fingerprint,
                "time_utc": utc_now(),
                "meters": poller.status(),
                # None until the outbox is open: the page may be asked before the service is up.
                "service": service.stats() if service.outbox is not None else None,
            }

        async with StatusPage(settings.status, snapshot):
            await service.run()


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
