"""The demo's site: simulated meters, two gateways, a broker and the backend service, as configuration files
and processes — the same commands and keys an operator uses.

    meter-sim TCP (SDM630 house-main, SunSpec pv-inverter) ──► gateway gw-house ─┐
    meter-sim RTU on a pty pair (SDM120 flat-1, flat-2; flat-3 configured, dead) ─► gateway gw-flats ─┤
                                                                                                  MQTT broker
    backend run: ingest, minter, indexer, cranks, api (market page) ◄───────────────────────────────┘
                 embedded chain (LiteSVM, state in the data directory) served over JSON-RPC
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from demo.stack import DemoError, Stack, cli, free_port, wait_port

__all__ = ["GATEWAYS", "LIVE_METERS", "Backend", "Site", "start_broker", "start_site"]

# gateway -> (bus, [(meter id, model, unit)]). flat-3 is configured but not on the line: its gateway marks it
# offline and the other meters never wait for it.
GATEWAYS: dict[str, tuple[str, list[tuple[str, str, int]]]] = {
    "gw-house": ("lan", [("house-main", "sdm630", 1), ("pv-inverter", "sunspec", 2)]),
    "gw-flats": ("rs485", [("flat-1", "sdm120", 1), ("flat-2", "sdm120", 2), ("flat-3", "sdm120", 3)]),
}
DEAD_METERS = ("flat-3",)
LIVE_METERS = tuple(m for _, (_, meters) in GATEWAYS.items() for m, _, _ in meters if m not in DEAD_METERS)


@dataclass
class Backend:
    config: Path
    data_dir: Path
    database: str
    api_url: str
    rpc_url: str
    admin_key: Path  # registry authority, certificates governance: an operator wallet
    payment_key: Path  # the payments program's operator: issues THBC against deposits
    admin: str
    payment_operator: str
    ack_key: Path  # signs the backend's acknowledgements; gateways get ack_key.pub

    @property
    def ack_public_key(self) -> Path:
        return self.ack_key.with_name(self.ack_key.name + ".pub")

    @property
    def deployment(self) -> Path:
        return self.data_dir / "chain" / "deployment.json"

    @property
    def market_url(self) -> str:
        return f"{self.api_url}/market/"


@dataclass
class Site:
    backend: Backend
    gateway_keys: dict[str, str] = field(default_factory=dict)  # gateway -> public key hex
    status_urls: dict[str, str] = field(default_factory=dict)  # gateway -> status page URL
    meter_gateway: dict[str, str] = field(default_factory=dict)  # meter id -> gateway


def start_broker(stack: Stack, choice: str) -> int:
    """A private broker on a free port: the system's Mosquitto, or (without it, or asked) the embedded amqtt."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    if choice == "embedded" or (choice == "auto" and not Path(mosquitto).exists()):
        from demo.broker import AMQTT_MISSING, amqtt_available

        if not amqtt_available():
            raise DemoError(AMQTT_MISSING)
        ready = stack.start("broker", [sys.executable, "-m", "demo.broker", "--port", str(port)],
                            ready=r"broker ready: (\S+) \((amqtt [\d.]+)\)")
        assert ready is not None
        reason = "asked for" if choice == "embedded" else "no system Mosquitto found"
        print(f"demo: MQTT broker: embedded {ready.group(2)} on {ready.group(1)} ({reason})", flush=True)
        return port
    if not Path(mosquitto).exists():
        raise DemoError("mosquitto is not installed: apt-get install mosquitto (or run bash .ci/setup)")
    conf = stack.workdir / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:
        lines.append("user root")  # as root mosquitto would switch to a user who cannot read the workdir
    conf.write_text("\n".join(lines) + "\n")
    stack.start("mosquitto", [mosquitto, "-c", str(conf)])
    wait_port(port, "mosquitto", stack)
    print(f"demo: MQTT broker: Mosquitto on 127.0.0.1:{port}", flush=True)
    return port


def _keypair(path: Path) -> str:
    """A Solana keypair file (0600), made once; returns its address."""
    from solders.keypair import Keypair

    from gridtokenx.keyfile import load_keypair_file, write_keypair_file

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_keypair_file(path, Keypair())
    return str(load_keypair_file(path).pubkey())


def _backend_config(workdir: Path, broker_port: int, fast: bool) -> Backend:
    data = workdir / "backend"
    keys = data / "chain" / "keys"
    # The embedded chain creates its keys on first start; made here first so that the api can name the
    # operators' wallets in its configuration.
    admin, payment, relayer = keys / "admin.json", keys / "payment-gateway.json", keys / "relayer.json"
    admin_address, payment_address = _keypair(admin), _keypair(payment)
    _keypair(relayer)  # the backend's fee payer: settlements, cranks, and users' transactions through the api
    # The key that signs the backend's acknowledgements; gateways trust its .pub file (docs/mqtt.md).
    ack_key = data / "backend-ack.key"
    if not ack_key.exists():
        done = subprocess.run(cli("backend", "ack-keygen", "--out", str(ack_key)), capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            raise DemoError(f"backend ack-keygen failed: {done.stderr}")
    api_port, rpc_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{api_port}"
    database = f"sqlite:///{data / 'backend.db'}"
    interval = 0.5 if fast else 1.0
    config = workdir / "backend.toml"
    config.write_text(f"""# Written by `gridtokenx demo`; docs/backend.md describes every key.
roles = ["ingest", "minter", "indexer", "cranks", "api"]
data_dir = "{data}"
instance = "demo"

[database]
url = "{database}"

[mqtt]
host = "127.0.0.1"
port = {broker_port}
ack_key_file = "{ack_key}"

[chain]
url = "embedded"
listen = "127.0.0.1:{rpc_port}"

[minter]
interval_s = {interval}
retry_first_s = 1

[indexer]
interval_s = 0.2

[cranks]
interval_s = {interval}

[api]
host = "127.0.0.1"
port = {api_port}
domain = "127.0.0.1:{api_port}"
uri = "{api_url}"
token_key_file = "{data / 'api-token.key'}"
operators = ["{admin_address}", "{payment_address}"]
fee_payer_keypair = "{relayer}"
""")
    return Backend(config, data, database, api_url, f"http://127.0.0.1:{rpc_port}", admin, payment, admin_address,
                   payment_address, ack_key)


def _gateway_config(workdir: Path, gateway: str, *, bus: str, endpoint: str, broker_port: int, status_port: int,
                    interval: float, speedup: float, backend_key: Path) -> Path:
    from gateway.models import get_model

    _, meters = GATEWAYS[gateway]
    blocks = []
    for meter_id, model, unit in meters:
        # The simulator compresses time `speedup`-fold, so its counters rise that much faster than a real
        # meter's could; the plausibility bound scales with it, or every reading would be flagged METER_ERROR.
        bound = int(get_model(model).rated_power_w * max(1.0, speedup))
        blocks.append(f'[[meter]]\nid = "{meter_id}"\nmodel = "{model}"\nunit = {unit}\nbus = "{bus}"\n'
                      f"interval = {interval}\nmax_power_w = {bound}\n"
                      + ("offline_after = 1\n" if meter_id in DEAD_METERS else ""))
    bus_block = (f'[[bus]]\nname = "lan"\ntype = "tcp"\nhost = "127.0.0.1"\nport = {endpoint}\ntimeout = 1.0\n'
                 if bus == "lan" else
                 f'[[bus]]\nname = "rs485"\ntype = "rtu"\ndevice = "{endpoint}"\nbaudrate = 9600\ntimeout = 0.3\n')
    directory = workdir / gateway
    directory.mkdir(exist_ok=True, mode=0o700)
    path = workdir / f"{gateway}.toml"
    path.write_text(f"""# Written by `gridtokenx demo`; the commented reference is systemd/gateway.example.toml.
[gateway]
id = "{gateway}"

{bus_block}
{chr(10).join(blocks)}
[mqtt]
host = "127.0.0.1"
port = {broker_port}
ack_timeout_s = 3.0
backend_key_file = "{backend_key}"

[outbox]
path = "{directory}/outbox.db"

[key]
path = "{directory}/device.key"

[status]
listen = "127.0.0.1:{status_port}"
""")
    return path


def _keygen(workdir: Path, gateway: str) -> str:
    done = subprocess.run(cli("gateway", "keygen", "--out", str(workdir / gateway / "device.key"),
                              "--gateway-id", gateway), capture_output=True, text=True, check=False)
    match = re.search(r"public key:\s+([0-9a-f]{64})", done.stdout)
    if done.returncode != 0 or match is None:
        raise DemoError(f"gateway keygen for {gateway} failed: {done.stderr or done.stdout}")
    return match.group(1)


def start_site(stack: Stack, *, broker: str, interval: float, speedup: float, fast: bool, sim_tty: str,
               gateway_tty: str) -> Site:
    """Broker, backend service, meters and gateways, each ready before the next that needs it."""
    workdir = stack.workdir
    broker_port = start_broker(stack, broker)
    backend = _backend_config(workdir, broker_port, fast)
    site = Site(backend)
    for gateway in GATEWAYS:
        (workdir / gateway).mkdir(exist_ok=True, mode=0o700)
        site.gateway_keys[gateway] = _keygen(workdir, gateway)
        # Commissioned before the backend starts: no reading of theirs waits in quarantine.
        done = subprocess.run(cli("backend", "add-gateway", "--config", str(backend.config), "--id", gateway,
                                  "--public-key", site.gateway_keys[gateway]),
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DemoError(f"backend add-gateway {gateway} failed: {done.stderr}")
        for meter_id, _, _ in GATEWAYS[gateway][1]:
            site.meter_gateway[meter_id] = gateway
    stack.start("backend", cli("--log-level", "INFO", "backend", "run", "--config", str(backend.config)))
    wait_port(int(backend.api_url.rsplit(":", 1)[1]), "the backend's api", stack, timeout=60)
    print(f"demo: backend service running (ingest, minter, indexer, cranks, api) on an embedded chain in "
          f"{backend.data_dir / 'chain'}", flush=True)
    speed = ["--speedup", str(speedup)]
    tcp = stack.start("meter-sim-tcp", cli("meter-sim", "--meter", "sdm630:1", "--meter", "sunspec:2", "--tcp",
                                           "127.0.0.1:0", *speed), ready=r"ready: tcp [\d.]+:(\d+)")
    assert tcp is not None
    stack.start("meter-sim-rtu", cli("meter-sim", "--meter", "sdm120:1", "--meter", "sdm120:2", "--serial", sim_tty,
                                     *speed), ready=r"ready: rtu")
    for gateway, (bus, _) in GATEWAYS.items():
        status_port = free_port()
        config = _gateway_config(workdir, gateway, bus=bus, endpoint=tcp.group(1) if bus == "lan" else gateway_tty,
                                 broker_port=broker_port, status_port=status_port, interval=interval,
                                 speedup=speedup, backend_key=backend.ack_public_key)
        stack.start(gateway, cli("gateway", "run", "--config", str(config)))
        site.status_urls[gateway] = f"http://127.0.0.1:{status_port}/"
    for gateway, url in site.status_urls.items():
        wait_port(int(url.rsplit(":", 1)[1].rstrip("/")), f"{gateway}'s status page", stack)
    return site
