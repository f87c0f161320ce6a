"""``gridtokenx backend …``: run the ingest service and commission gateways.

    gridtokenx backend run [--config FILE] [--database URL] [--mqtt-host H] [--mqtt-port P] [--ack-key FILE]
    gridtokenx backend add-gateway --id GW --public-key HEX [--replace] [--database URL]
    gridtokenx backend requeue-quarantine --id GW [--database URL]
    gridtokenx backend gateways [--database URL]
    gridtokenx backend stats [--database URL]
    gridtokenx backend ack-keygen --out FILE

The database URL comes from ``--database``, else the environment variable GRIDTOKENX_DATABASE_URL,
else the config file's ``[database] url``, else the embedded SQLite default.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from backend.ingest.ack_key import AckKeyError, generate_ack_key
from backend.ingest.pipeline import Ingest
from backend.ingest.receiver import BackendSettings, Receiver
from backend.ingest.verify import usable_public_key
from backend.storage import Storage, StorageConfigError, StorageError, open_storage
from gridtokenx.batch import BatchFormatError, check_gateway_id
from gridtokenx.identity import fingerprint
from gridtokenx.mqtt import MqttError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # systemd units use RestartPreventExitStatus=2: do not spin on configuration errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="backend_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", type=Path, help="backend TOML file ([database], [mqtt])")
        p.add_argument("--database", help="postgresql://… or sqlite:///path (env GRIDTOKENX_DATABASE_URL)")

    run = sub.add_parser("run", help="verify, store and acknowledge readings arriving over MQTT")
    common(run)
    run.add_argument("--mqtt-host", help="broker host (overrides the config file)")
    run.add_argument("--mqtt-port", type=int, help="broker port (overrides the config file)")
    run.add_argument("--ack-key", type=Path, help="the key that signs acks (overrides [mqtt] ack_key_file)")

    add = sub.add_parser("add-gateway", help="commission a gateway: its id and Ed25519 public key")
    common(add)
    add.add_argument("--id", required=True, dest="gateway_id")
    add.add_argument("--public-key", required=True, help="64 hex digits, as printed by `gateway keygen`")
    add.add_argument("--replace", action="store_true", help="re-key an already commissioned gateway")

    requeue = sub.add_parser(
        "requeue-quarantine", help="ingest again a gateway's readings quarantined before it was commissioned"
    )
    common(requeue)
    requeue.add_argument("--id", required=True, dest="gateway_id")

    for name, text in (("gateways", "list commissioned gateways"), ("stats", "count readings and quarantine")):
        common(sub.add_parser(name, help=text))

    keygen = sub.add_parser("ack-keygen", help="create the key that signs acks (gateways get its .pub file)")
    keygen.add_argument("--out", type=Path, required=True, help="e.g. /var/lib/gridtokenx/backend-ack.key")


def load_settings(args: argparse.Namespace) -> BackendSettings:
    data: dict[str, Any] = {}
    if args.config is not None:
        try:
            data = tomllib.loads(args.config.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SystemExit(_fail(f"cannot read {args.config}: {exc}")) from None
    try:
        settings = BackendSettings.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SystemExit(_fail(f"{args.config}: {errors}")) from None
    url = args.database or os.environ.get("GRIDTOKENX_DATABASE_URL")
    if url:
        settings.database.url = url
    if getattr(args, "mqtt_host", None):
        settings.mqtt.host = args.mqtt_host
    if getattr(args, "mqtt_port", None):
        settings.mqtt.port = args.mqtt_port
    if getattr(args, "ack_key", None):
        settings.mqtt.ack_key_file = args.ack_key
    return settings


def _fail(message: str) -> int:
    print(f"gridtokenx backend: {message}", file=sys.stderr)
    return EXIT_CONFIG


def run(args: argparse.Namespace) -> int:
    if args.backend_command == "ack-keygen":
        return _ack_keygen(args)
    settings = load_settings(args)
    try:
        return asyncio.run(_ACTIONS[args.backend_command](args, settings))
    except (StorageConfigError, AckKeyError) as exc:  # configuration: systemd must not restart on these
        return _fail(str(exc))
    except StorageError as exc:
        print(f"gridtokenx backend: {exc}", file=sys.stderr)
        return 1
    except MqttError as exc:
        return _fail(str(exc))


def _ack_keygen(args: argparse.Namespace) -> int:
    try:
        key = generate_ack_key(args.out)
    except AckKeyError as exc:
        return _fail(str(exc))
    print(f"ack key written to {args.out} (mode 0600)")
    print(f"public key {key.public_key.hex()} (fingerprint {key.fingerprint})")
    print(f"give {args.out}.pub to every gateway as [mqtt] backend_key_file")
    return 0


async def _run_service(args: argparse.Namespace, settings: BackendSettings) -> int:
    storage = await open_storage(settings.database.url)
    ingest = Ingest(storage, verify_processes=settings.ingest.effective_verify_processes())
    try:
        receiver = Receiver(settings.mqtt, ingest)
    except BaseException:
        ingest.close()
        await storage.close()
        raise
    task = asyncio.create_task(receiver.run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    log.info("backend ingest on %s, database %s", f"{settings.mqtt.host}:{settings.mqtt.effective_port}", storage.where)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        ingest.close()
        await storage.close()
        s = ingest.stats
        log.info(
            "backend stopped: %d messages, %d stored, %d duplicates, rejected %s",
            s.messages,
            s.stored,
            s.duplicates,
            dict(s.rejected),
        )
    return 0


async def _add_gateway(args: argparse.Namespace, settings: BackendSettings) -> int:
    try:
        gateway_id = check_gateway_id(args.gateway_id)
        public_key = bytes.fromhex(args.public_key)
        if not usable_public_key(public_key):
            raise ValueError
    except BatchFormatError as exc:
        return _fail(str(exc))
    except ValueError:
        return _fail(
            "--public-key must be 64 hex digits encoding an Ed25519 public key of the prime-order subgroup "
            "(as `gateway keygen` prints it; small-order, mixed-order and non-canonical keys are refused)"
        )
    async with await open_storage(settings.database.url) as storage:
        try:
            await storage.add_gateway(gateway_id, public_key, replace=args.replace)
        except StorageError as exc:
            return _fail(str(exc))
    print(f"gateway {gateway_id} commissioned: public key {public_key.hex()} (fingerprint {fingerprint(public_key)})")
    return 0


async def _list_gateways(args: argparse.Namespace, settings: BackendSettings) -> int:
    async with await open_storage(settings.database.url) as storage:
        for g in await storage.gateways():
            presence = "unknown" if g.online is None else ("online" if g.online else "offline")
            print(f"{g.gateway_id}\t{g.status}\t{presence}\t{g.public_key.hex()}")
    return 0


async def _stats(args: argparse.Namespace, settings: BackendSettings) -> int:
    storage: Storage
    async with await open_storage(settings.database.url) as storage:
        print(f"readings\t{await storage.reading_count()}")
        for reason, n in sorted((await storage.quarantine_counts()).items()):
            print(f"quarantine {reason}\t{n}")
    return 0


async def _requeue(args: argparse.Namespace, settings: BackendSettings) -> int:
    async with await open_storage(settings.database.url) as storage:
        ingest = Ingest(storage)
        try:
            released, refused = await ingest.reprocess_quarantine(args.gateway_id)
        finally:
            ingest.close()
    print(f"gateway {args.gateway_id}: {released} quarantined readings now stored, {refused} still refused")
    return 0


_ACTIONS = {
    "run": _run_service,
    "add-gateway": _add_gateway,
    "gateways": _list_gateways,
    "stats": _stats,
    "requeue-quarantine": _requeue,
}
