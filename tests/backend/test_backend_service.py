"""`gridtokenx backend`'s configuration and commands: precedence, secrets, errors with exit 2, and the
embedded chain run as a service — served over JSON-RPC, restarted with its balances."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from solders.keypair import Keypair
from spl.token.instructions import create_associated_token_account

from backend.config import ConfigError, load_config
from backend.storage import balances, events, meters, open_storage
from backend.storage import reading_states as rs
from programs.client import RpcChain
from programs.deployment import Deployment
from programs.registry import client as registry
from tests.support.chainworld import GATEWAY_ID, GATEWAY_KEY, ingest, reading, token_balance
from tests.support.processes import Proc, backend_cmd


def _backend(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridtokenx", "backend", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_configuration_precedence_file_then_environment_then_options(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "backend.toml"
    path.write_text('roles = ["ingest"]\ndata_dir = "/srv/gtx"\n[mqtt]\nhost = "broker"\nport = 1884\n'
                    '[minter]\ninterval_s = 9\n[redis]\nurl = "redis://127.0.0.1:6379/0"\n')
    monkeypatch.setenv("GRIDTOKENX_BACKEND_ROLES", "ingest, minter,indexer")
    monkeypatch.setenv("GRIDTOKENX_BACKEND_MQTT__PORT", "1999")
    config = load_config(path, mqtt={"host": "other"})
    assert config.roles == ["ingest", "minter", "indexer"]
    assert (config.mqtt.host, config.mqtt.port, config.minter.interval_s) == ("other", 1999, 9)
    assert config.database_url == "sqlite:////srv/gtx/backend.db"
    assert config.chain.embedded and config.chain_dir == Path("/srv/gtx/chain")


def test_the_example_configuration_is_valid() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "systemd" / "backend.example.toml")
    assert config.roles == ["ingest", "minter", "indexer", "cranks"] and not config.chain.embedded


def test_every_bad_key_is_named_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "backend.toml"
    path.write_text('roles = ["ingest", "mint"]\nbogus = 1\n[chain]\nurl = "ftp://x"\n[minter]\nmax_attempts = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    for key in ("roles.1", "bogus", "chain.url", "minter.max_attempts"):
        assert key in str(caught.value)
    path.write_text('[chain]\nurl = "http://127.0.0.1:8899"\n')
    with pytest.raises(ConfigError, match="deployment_file is required"):
        load_config(path)
    monkeypatch.setenv("GRIDTOKENX_BACKEND_CHAIN__COMMITMENT", "eventual")
    with pytest.raises(ConfigError, match=r"chain\.commitment"):
        load_config(None)


def test_secrets_come_from_owner_only_files(tmp_path: Path) -> None:
    secret = tmp_path / "db.password"
    secret.write_text("s3cret:/@\n")
    secret.chmod(0o644)
    config = load_config(None, database={"url": "postgresql://gtx@db.example/gtx", "password_file": secret})
    with pytest.raises(ConfigError, match="readable by others"):
        _ = config.database_url
    secret.chmod(0o600)
    assert config.database_url == "postgresql://gtx:s3cret%3A%2F%40@db.example/gtx"


def test_backend_commands_do_not_load_the_api() -> None:
    """Every `gridtokenx backend` command reads the configuration, ``[api]`` included; FastAPI and the
    routes are loaded only when the api role runs (``backend.api`` hands its names on lazily)."""
    code = (
        "import sys, backend.cli, backend.config, backend.service\n"
        "from backend.api import ApiSettings\n"
        "ApiSettings(operators=[])\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette', 'uvicorn')\n"
        "             or m.startswith(('backend.api.app', 'backend.api.routes'))))\n"
        "from backend.api import create_app\n"
        "print('fastapi' in sys.modules and 'backend.api.routes.orders' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "True"]


def test_commands_refuse_bad_configuration_with_status_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[database]\nurl = 5\nsurprise = true\n")
    result = _backend("stats", "--config", str(bad))
    assert result.returncode == 2 and "database.url" in result.stderr and "surprise" in result.stderr
    assert "Traceback" not in result.stderr
    result = _backend("run", "--database", f"sqlite:///{tmp_path}/b.db", "--roles", "minter,pricing",
                      "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 2 and "roles.1" in result.stderr, result.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened
    result = _backend("run", "--database", f"sqlite:///{tmp_path}/b.db", "--roles", "minter",
                      "--chain", "http://127.0.0.1:1", "--deployment", str(tmp_path / "missing.json"))
    assert result.returncode == 2 and "missing.json" in result.stderr, result.stderr


@pytest.mark.chain
async def test_embedded_chain_as_a_service_keeps_its_state_across_a_restart(tmp_path: Path) -> None:
    """roles minter, indexer, cranks and api on the embedded chain, served over JSON-RPC for the owner's
    wallet and the operator's `meters activate`; stopped with SIGTERM and started again: balances, cursor and
    rows kept."""
    db_url = f"sqlite:///{tmp_path}/backend.db"
    port, api_port = _free_port(), _free_port()
    config = tmp_path / "backend.toml"
    config.write_text(
        f'roles = ["minter", "indexer", "cranks", "api"]\ndata_dir = "{tmp_path}/data"\n'
        f'[database]\nurl = "{db_url}"\n[chain]\nlisten = "127.0.0.1:{port}"\n[minter]\ninterval_s = 0.3\n'
        f'[indexer]\ninterval_s = 0.2\n[api]\nport = {api_port}\ntoken_key_file = "{tmp_path}/api-token.key"\n'
    )
    async with await open_storage(db_url) as storage:
        await storage.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
    service = Proc(backend_cmd("run", "--config", str(config)), tmp_path / "service-1.log")
    try:
        url = f"http://127.0.0.1:{port}"
        await _wait_for(lambda: "served over JSON-RPC" in service.log(), service)
        # The api role answers with this process's database and chain.
        import httpx

        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    response = await client.get(f"http://127.0.0.1:{api_port}/healthz")
            except httpx.HTTPError:
                return False
            return response.status_code == 200 and response.json()["checks"]["chain"]["status"] == "ok"

        await _wait_for(healthy, service)
        deployment = Deployment.load(tmp_path / "data" / "chain" / "deployment.json")
        owner = Keypair()
        async with RpcChain(url, poll_interval=0.05) as chain:
            await chain.fund(owner.pubkey(), 10**9)
            ixs = [registry.register_user(deployment.registry, owner.pubkey(), registry.UserKind.PROSUMER),
                   registry.register_meter(deployment.registry, owner.pubkey(), "pv-svc",
                                           bytes(GATEWAY_KEY.verify_key)),
                   create_associated_token_account(owner.pubkey(), owner.pubkey(), deployment.grid_mint)]
            (await chain.send_transaction(ixs, [owner])).raise_for_failure()
            activate = await asyncio.to_thread(
                _backend, "meters", "activate", "pv-svc", "--config", str(config), "--chain", url, "--deployment",
                str(tmp_path / "data" / "chain" / "deployment.json"), "--authority",
                str(tmp_path / "data" / "chain" / "keys" / "admin.json"))
            assert activate.returncode == 0, activate.stderr
            async with await open_storage(db_url) as storage:
                await ingest(storage, *(reading("pv-svc", s, 100, 1_000 + 500 * s) for s in range(3)))

                async def minted() -> bool:
                    return (await balances.wallet_balances(storage, str(owner.pubkey())))["GRID"] == 1_000 * 10**6

                await _wait_for(minted, service)
                grid_account = (await balances.token_accounts(storage, owner=str(owner.pubkey())))[0].address
                before = await events.last_event_id(storage)
        assert service.terminate() == 0, service.log()[-3000:]

        service = Proc(backend_cmd("run", "--config", str(config)), tmp_path / "service-2.log")
        await _wait_for(lambda: "served over JSON-RPC" in service.log(), service)
        async with RpcChain(url, poll_interval=0.05) as chain, await open_storage(db_url) as storage:
            from solders.pubkey import Pubkey

            assert await token_balance(chain, Pubkey.from_string(grid_account)) == 1_000 * 10**6
            await ingest(storage, reading("pv-svc", 3, 100, 2_500))

            async def more() -> bool:
                return (await balances.wallet_balances(storage, str(owner.pubkey())))["GRID"] == 1_500 * 10**6

            await _wait_for(more, service)
            counts = await events.event_counts(storage)
            # Nothing applied twice: one baseline, two mints, one registration.
            assert (counts["baseline_recorded"], counts["minted"], counts["meter_registered"]) == (1, 2, 1)
            assert await events.last_event_id(storage) == before + 2  # SettlementRecorded + GridMinted
            assert (await rs.state_counts(storage))["MINTED"] == 4
            m = await meters.get_meter(storage, "pv-svc")
            assert m is not None and (m.status, m.minted_base_units) == ("ACTIVE", 1_500 * 10**6)
        check = await asyncio.to_thread(_backend, "check", "--config", str(config), "--chain", url, "--deployment",
                                        str(tmp_path / "data" / "chain" / "deployment.json"))
        assert check.returncode == 0 and "consistent" in check.stdout, check.stdout + check.stderr
        stats = await asyncio.to_thread(_backend, "stats", "--config", str(config))
        assert re.search(r"readings MINTED\t4", stats.stdout) and "events minted\t2" in stats.stdout, stats.stdout
        assert service.terminate() == 0, service.log()[-3000:]
    finally:
        service.kill()


def _free_port() -> int:
    from tests.support.mosquitto import free_port

    return free_port()


async def _wait_for(check: object, proc: Proc, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        result = check()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert proc.running, proc.log()[-4000:]
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out: {proc.log()[-3000:]}")
