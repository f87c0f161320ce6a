"""``gridtokenx backend …``: run the backend's roles, commission gateways and meters, report.

    gridtokenx backend run [--config FILE] [--roles ingest,minter,indexer,cranks,api] [--chain embedded|URL] …
    gridtokenx backend add-gateway --id GW --public-key HEX [--replace]
    gridtokenx backend requeue-quarantine --id GW
    gridtokenx backend gateways
    gridtokenx backend meters list | activate ID [--status ACTIVE|SUSPENDED|DECOMMISSIONED]
    gridtokenx backend stats
    gridtokenx backend report --from DATE --to DATE [--format text|csv|json] [--meter ID]
    gridtokenx backend check                      # the database against the chain
    gridtokenx backend localnet --data-dir DIR [--port 8899]
    gridtokenx backend ack-keygen --out FILE              # the key that signs acks (gateways get its .pub)

Every command takes ``--config FILE`` (backend/config.py: TOML, then ``GRIDTOKENX_BACKEND_…`` environment
overrides); ``--database URL`` (or the environment variable GRIDTOKENX_DATABASE_URL) overrides the
configured database. Configuration errors exit with status 2 and one message naming every bad key.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from backend.config import ROLES, BackendConfig, ConfigError, load_config
from backend.ingest.ack_key import AckKeyError, generate_ack_key
from backend.ingest.verify import usable_public_key
from backend.storage import Storage, StorageConfigError, StorageError, open_storage
from gridtokenx.batch import BatchFormatError, check_gateway_id
from gridtokenx.identity import fingerprint
from gridtokenx.mqtt import MqttError

log = logging.getLogger(__name__)

EXIT_CONFIG = 2  # systemd units use RestartPreventExitStatus=2: do not spin on configuration errors


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="backend_command", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--config", type=Path, help="backend TOML file (docs/backend.md)")
        p.add_argument("--database", help="postgresql://… or sqlite:///path (env GRIDTOKENX_DATABASE_URL)")
        return p

    run = common(sub.add_parser("run", help="run the configured roles: ingest, minter, indexer, cranks, api"))
    run.add_argument("--roles", help=f"comma-separated, overrides the configuration ({', '.join(ROLES)})")
    run.add_argument("--chain", help="'embedded' or a JSON-RPC URL (overrides [chain] url)")
    run.add_argument("--deployment", type=Path, help="deployment file for --chain URL ([chain] deployment_file)")
    run.add_argument("--data-dir", type=Path, help="where embedded state lives (data_dir)")
    run.add_argument("--mqtt-host", help="broker host (overrides the config file)")
    run.add_argument("--mqtt-port", type=int, help="broker port (overrides the config file)")
    run.add_argument("--ack-key", type=Path, help="the key that signs acks (overrides [mqtt] ack_key_file)")

    add = common(sub.add_parser("add-gateway", help="commission a gateway: its id and Ed25519 public key"))
    add.add_argument("--id", required=True, dest="gateway_id")
    add.add_argument("--public-key", required=True, help="64 hex digits, as printed by `gateway keygen`")
    add.add_argument("--replace", action="store_true", help="re-key an already commissioned gateway")

    requeue = common(sub.add_parser(
        "requeue-quarantine", help="ingest again a gateway's readings quarantined before it was commissioned"))
    requeue.add_argument("--id", required=True, dest="gateway_id")

    common(sub.add_parser("gateways", help="list commissioned gateways"))
    common(sub.add_parser("stats", help="readings by state, mint failures, quarantine, indexer progress"))

    meters = sub.add_parser("meters", help="the meter registry: list, activate (operator)")
    msub = meters.add_subparsers(dest="meters_command", metavar="ACTION", required=True)
    common(msub.add_parser("list", help="meters as the indexer recorded them"))
    activate = common(msub.add_parser(
        "activate", help="set a registered meter's status on chain (signed by the registry authority)"))
    activate.add_argument("meter_id", metavar="ID")
    activate.add_argument("--status", default="ACTIVE", choices=["ACTIVE", "SUSPENDED", "DECOMMISSIONED"])
    activate.add_argument("--chain", help="'embedded' or a JSON-RPC URL (overrides [chain] url)")
    activate.add_argument("--deployment", type=Path, help="deployment file for --chain URL")
    activate.add_argument("--authority", type=Path, help="registry authority keypair file "
                                                         "([chain] authority_keypair_file)")

    report = common(sub.add_parser("report", help="the grid operator's report for a period"))
    report.add_argument("--from", dest="start", required=True, help="YYYY-MM-DD or ISO 8601 time (UTC)")
    report.add_argument("--to", dest="end", required=True, help="YYYY-MM-DD or ISO 8601 time (UTC), exclusive")
    report.add_argument("--format", default="text", choices=["text", "csv", "json"])
    report.add_argument("--meter", help="one meter only")

    check = common(sub.add_parser("check", help="compare the database with the chain (exit 1 on a difference)"))
    check.add_argument("--chain", help="'embedded' or a JSON-RPC URL (overrides [chain] url)")
    check.add_argument("--deployment", type=Path, help="deployment file for --chain URL")

    localnet = sub.add_parser("localnet", help="serve a persistent LiteSVM chain with every program over JSON-RPC")
    localnet.add_argument("--data-dir", type=Path, required=True, help="chain state, keys and deployment.json")
    localnet.add_argument("--host", default="127.0.0.1")
    localnet.add_argument("--port", type=int, default=8899, help="0: a free port (printed)")
    localnet.add_argument("--bare", action="store_true",
                          help="no programs: deploy them with `gridtokenx programs deploy --url …` (as on a cluster)")

    keygen = sub.add_parser("ack-keygen", help="create the key that signs acks (gateways get its .pub file)")
    keygen.add_argument("--out", type=Path, required=True, help="e.g. /var/lib/gridtokenx/backend-ack.key")


def _fail(message: str) -> int:
    print(f"gridtokenx backend: {message}", file=sys.stderr)
    return EXIT_CONFIG


def load_settings(args: argparse.Namespace) -> BackendConfig:
    """The configuration with this command's overrides (raises ConfigError)."""
    overrides: dict[str, Any] = {}
    url = args.database or (os.environ.get("GRIDTOKENX_DATABASE_URL")
                            if "GRIDTOKENX_BACKEND_DATABASE__URL" not in os.environ else None)
    if url:
        overrides["database"] = {"url": url}
    if getattr(args, "roles", None):
        overrides["roles"] = args.roles
    chain: dict[str, Any] = {}
    if getattr(args, "chain", None):
        chain["url"] = args.chain
    if getattr(args, "deployment", None):
        chain["deployment_file"] = args.deployment
    if getattr(args, "authority", None):
        chain["authority_keypair_file"] = args.authority
    if chain:
        overrides["chain"] = chain
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = args.data_dir
    mqtt: dict[str, Any] = {}
    if getattr(args, "mqtt_host", None):
        mqtt["host"] = args.mqtt_host
    if getattr(args, "mqtt_port", None):
        mqtt["port"] = args.mqtt_port
    if getattr(args, "ack_key", None):
        mqtt["ack_key_file"] = args.ack_key
    if mqtt:
        overrides["mqtt"] = mqtt
    return load_config(args.config, **overrides)


def run(args: argparse.Namespace) -> int:
    from programs.client.chain import ChainError
    from programs.deployment import DeploymentError

    if args.backend_command == "ack-keygen":
        return _ack_keygen(args)
    if args.backend_command == "localnet":
        return asyncio.run(_localnet(args))
    try:
        config = load_settings(args)
        if args.backend_command == "meters":
            action = _METER_ACTIONS[args.meters_command]
        else:
            action = _ACTIONS[args.backend_command]
        return asyncio.run(action(args, config))
    except ConfigError as exc:
        return _fail(str(exc))
    except (DeploymentError, StorageConfigError, AckKeyError) as exc:  # configuration: no systemd restart
        return _fail(str(exc))
    except StorageError as exc:
        print(f"gridtokenx backend: {exc}", file=sys.stderr)
        return 1 if exc.transient else EXIT_CONFIG
    except MqttError as exc:
        return _fail(str(exc))
    except ChainError as exc:
        print(f"gridtokenx backend: chain: {exc}", file=sys.stderr)
        return 1


async def _run_service(args: argparse.Namespace, config: BackendConfig) -> int:
    from backend.ingest.ack_key import load_ack_key
    from backend.service import RoleUnavailable, open_context, run_roles

    try:
        async with open_context(config) as ctx:
            if "ingest" in config.roles:
                # A missing or unsafe ack key is a configuration error: exit 2 before any role starts.
                load_ack_key(config.mqtt.ack_key_file)
            return await run_roles(ctx)
    except RoleUnavailable as exc:
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


async def _add_gateway(args: argparse.Namespace, config: BackendConfig) -> int:
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
    async with await open_storage(config.database_url) as storage:
        try:
            await storage.add_gateway(gateway_id, public_key, replace=args.replace)
        except StorageError as exc:
            return _fail(str(exc))
    print(f"gateway {gateway_id} commissioned: public key {public_key.hex()} (fingerprint {fingerprint(public_key)})")
    return 0


async def _list_gateways(args: argparse.Namespace, config: BackendConfig) -> int:
    async with await open_storage(config.database_url) as storage:
        for g in await storage.gateways():
            presence = "unknown" if g.online is None else ("online" if g.online else "offline")
            print(f"{g.gateway_id}\t{g.status}\t{presence}\t{g.public_key.hex()}")
    return 0


async def _stats(args: argparse.Namespace, config: BackendConfig) -> int:
    from backend.storage import events, reading_states

    storage: Storage
    async with await open_storage(config.database_url) as storage:
        print(f"readings\t{await storage.reading_count()}")
        for state, n in (await reading_states.state_counts(storage)).items():
            print(f"readings {state}\t{n}")
        failed: dict[str, int] = {}
        for reason, retrying, n in await storage.fetch(
                "SELECT COALESCE(reason, '?'), next_attempt_ms IS NOT NULL, count(*) FROM reading_states "
                "WHERE state = 'FAILED' GROUP BY 1, 2 ORDER BY 1"):
            failed[f"{reason} ({'retrying' if retrying else 'given up'})"] = int(n)
        for reason, n in failed.items():
            print(f"mint failed {reason}\t{n}")
        for reason, n in sorted((await storage.quarantine_counts()).items()):
            print(f"quarantine {reason}\t{n}")
        for kind, n in sorted((await events.event_counts(storage)).items()):
            print(f"events {kind}\t{n}")
        for name, position, slot, updated in await storage.fetch(
                "SELECT name, position, slot, updated_ms FROM chain_cursor ORDER BY name"):
            print(f"indexer cursor {name}\tslot {slot} position {position} (updated_ms {updated})")
        for state, n in await storage.fetch("SELECT state, count(*) FROM orders GROUP BY state ORDER BY state"):
            print(f"orders {state}\t{n}")
        print(f"trades\t{(await storage.fetch('SELECT count(*) FROM trades'))[0][0]}")
        for status, n in await storage.fetch(
                "SELECT status, count(*) FROM certificates GROUP BY status ORDER BY status"):
            print(f"certificates {status}\t{n}")
    return 0


async def _requeue(args: argparse.Namespace, config: BackendConfig) -> int:
    from backend.ingest.pipeline import Ingest

    async with await open_storage(config.database_url) as storage:
        ingest = Ingest(storage)
        try:
            released, refused = await ingest.reprocess_quarantine(args.gateway_id)
        finally:
            ingest.close()
    print(f"gateway {args.gateway_id}: {released} quarantined readings now stored, {refused} still refused")
    return 0


async def _meters_list(args: argparse.Namespace, config: BackendConfig) -> int:
    from backend.storage import meters

    async with await open_storage(config.database_url) as storage:
        after = None
        while page := await meters.list_meters(storage, after=after, limit=500):
            for m in page:
                print(f"{m.meter_id}\t{m.status}\towner {m.owner_wallet}\tkey {m.meter_key.hex()[:16]}…\t"
                      f"settled seq {m.settled_seq}\tminted {m.minted_base_units / 10**9:.3f} GRID")
            after = page[-1].meter_id
    return 0


async def _meters_activate(args: argparse.Namespace, config: BackendConfig) -> int:
    """SetMeterStatus signed by the registry authority: the operator's decision, on chain; the indexer
    then records it in D1."""
    from backend.service import open_context
    from programs.deployment import load_keypair
    from programs.registry import client as registry

    async with open_context(config, need_chain=True) as ctx:
        chain, deployment = ctx.require_chain("meters activate")
        if config.chain.authority_keypair_file is not None:
            authority = load_keypair(config.chain.authority_keypair_file)
        elif ctx.embedded is not None:
            authority = ctx.embedded.admin
        else:
            return _fail("the registry authority's keypair is needed: --authority FILE or "
                         "[chain] authority_keypair_file")
        meter = await registry.fetch_meter(chain, deployment.registry, args.meter_id)
        if meter is None:
            return _fail(f"meter {args.meter_id!r} is not registered on chain (registry {deployment.registry}): "
                         "its owner registers it first")
        status = registry.MeterStatus[args.status]
        if meter.status == status:
            print(f"meter {args.meter_id} is already {status.name}")
            return 0
        address = registry.meter_address(deployment.registry, args.meter_id)[0]
        ix = registry.set_meter_status(deployment.registry, authority.pubkey(), address, status)
        payer = ctx.relayer if ctx.relayer is not None else authority
        signers = [payer] if payer.pubkey() == authority.pubkey() else [payer, authority]
        result = await chain.send_transaction([ix], signers)
        if result.failure is not None:
            return _fail(f"meter {args.meter_id}: refused by the registry: "
                         f"{registry.REGISTRY_ERRORS.name(result.failure)}")
        print(f"meter {args.meter_id}: {meter.status.name} → {status.name} (tx {result.signature})")
    return 0


async def _report(args: argparse.Namespace, config: BackendConfig) -> int:
    from backend.report import build_report, parse_when, render

    try:
        start, end = parse_when(args.start), parse_when(args.end)
    except ValueError as exc:
        return _fail(str(exc))
    if end <= start:
        return _fail("--to must be after --from")
    async with await open_storage(config.database_url) as storage:
        report = await build_report(storage, start, end, meter=args.meter)
    print(render(report, args.format))
    return 0


async def _check(args: argparse.Namespace, config: BackendConfig) -> int:
    from backend.consistency import check_consistency
    from backend.service import open_context

    async with open_context(config, need_chain=True) as ctx:
        chain, deployment = ctx.require_chain("check")
        report = await check_consistency(ctx.storage, chain, deployment)
    checked = ", ".join(f"{n} {what}" for what, n in report.checked.items())
    for d in report.discrepancies:
        print(d)
    print(f"checked {checked}: {'consistent' if report.ok else f'{len(report.discrepancies)} differences'}")
    return 0 if report.ok else 1


async def _localnet(args: argparse.Namespace) -> int:
    import signal

    from backend.chain.embedded import open_embedded_chain
    from backend.chain.localnet import LocalnetServer
    from backend.chain.persistent import ChainStateError, PersistentLiteSVMChain

    d: Path = args.data_dir
    try:
        if args.bare:
            chain = PersistentLiteSVMChain(d, blockhash_check=False, slot_per_transaction=False)
            where = "no programs deployed (gridtokenx programs deploy --url URL --keypair FILE)"
        else:
            chain = (await open_embedded_chain(d, blockhash_check=False, slot_per_transaction=False)).chain
            where = (f"deployment {d / 'deployment.json'}, admin {d / 'keys' / 'admin.json'}, "
                     f"payment gateway {d / 'keys' / 'payment-gateway.json'}")
    except ChainStateError as exc:
        return _fail(str(exc))
    try:
        async with LocalnetServer(chain, host=args.host, port=args.port) as server:
            print(f"localnet ready: {server.url} {where}", flush=True)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
    finally:
        chain.close()
    return 0


_ACTIONS = {
    "run": _run_service,
    "add-gateway": _add_gateway,
    "gateways": _list_gateways,
    "stats": _stats,
    "requeue-quarantine": _requeue,
    "report": _report,
    "check": _check,
}
_METER_ACTIONS = {"list": _meters_list, "activate": _meters_activate}
