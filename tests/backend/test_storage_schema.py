"""Schema versions and in-place upgrades on both dialects: a version-1 database keeps its rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from backend.storage import SCHEMA_VERSION, Storage, StorageError, nonces, open_storage
from backend.storage.database import PostgresStorage, SqliteStorage
from backend.storage.reading_states import reading_state, state_counts
from backend.storage.schema import upgrade
from tests.support.postgres import temp_database

# What a version-1 minting worker created on demand (backend/minting/worker.py before version 2).
V1_SETTLEMENTS = """CREATE TABLE IF NOT EXISTS settlements (
    gateway_id TEXT NOT NULL,
    meter_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('minted', 'already_settled')),
    refusal TEXT,
    tx_signature TEXT,
    minted_base_units BIGINT NOT NULL,
    settled_ms BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, meter_id, seq)
)"""

V2_TABLES = ["users", "meters", "reading_states", "mint_progress", "chain_transactions", "chain_events",
             "event_wallets", "chain_cursor", "token_accounts", "orders", "trades", "certificates", "payments"]


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        with temp_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path}/backend.db"


async def _raw(url: str) -> Storage:
    """A connection that has not been migrated (open_storage always upgrades)."""
    if url.startswith("postgresql://"):
        return await PostgresStorage.connect(url)
    return await SqliteStorage.connect(Path(url[len("sqlite://"):]))


@pytest.fixture
async def v1_database(db_url: str) -> AsyncIterator[str]:
    """A database exactly as a version-1 backend leaves it, with readings minted by its worker."""
    s = await _raw(db_url)
    try:
        assert await upgrade(s, target=1) == 0
        await s.execute(V1_SETTLEMENTS)
        await s.execute(
            "INSERT INTO gateways (gateway_id, public_key, status, added_ms) VALUES ('gw', $1, 'active', 1)",
            b"\x01" * 32,
        )
        for seq in range(6):
            await s.execute(
                "INSERT INTO readings (gateway_id, meter_id, seq, timestamp_ms, import_wh, export_wh, power_w, flags, "
                "data, signature, received_ms) VALUES ('gw', 'm1', $1, $2, 10, $3, NULL, 0, $4, $5, 7)",
                seq, 1_000 + seq, 100 * seq, bytes([seq]) * 60, bytes([seq]) * 64,
            )
        await s.execute("INSERT INTO quarantine (gateway_id, reason, received_ms) VALUES ('gw', 'bad_signature', 9)")
        # seq 0 the baseline, seq 3 minted (1 and 2 passed over), seq 4 already settled by someone else.
        await s.executemany(
            "INSERT INTO settlements VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            [("gw", "m1", 0, "minted", None, "sig-base", 0, 100),
             ("gw", "m1", 3, "minted", None, "sig-three", 200_000_000, 300),
             ("gw", "m1", 4, "already_settled", "ReplayedReading", None, 0, 400)],
        )
    finally:
        await s.close()
    yield db_url


async def test_a_new_database_gets_the_newest_schema(db_url: str) -> None:
    async with await open_storage(db_url) as s:
        assert (await s.fetch("SELECT value FROM schema_info WHERE key = 'schema_version'"))[0][0] == SCHEMA_VERSION
        for table in V2_TABLES:
            assert await s.table_exists(table), table
        assert not await s.table_exists("settlements")
    async with await open_storage(db_url) as s:  # opening again changes nothing
        assert (await s.fetch("SELECT value FROM schema_info"))[0][0] == SCHEMA_VERSION


async def test_version_1_upgrades_in_place_and_keeps_its_rows(v1_database: str) -> None:
    async with await open_storage(v1_database) as s:
        assert (await s.fetch("SELECT value FROM schema_info"))[0][0] == SCHEMA_VERSION
        assert await s.reading_count("gw") == 6
        assert [r.seq for r in await s.readings("gw")] == list(range(6))
        assert (await s.gateway("gw")) is not None
        assert await s.quarantine_counts() == {"bad_signature": 1}
        assert not await s.table_exists("settlements")
        # Settled readings are MINTED with their transaction; passed-over ones by the settlement covering them.
        states = {seq: await reading_state(s, "gw", "m1", seq) for seq in range(6)}
        assert states[0][:2] == ("MINTED", "sig-base")
        assert states[1][:2] == states[2][:2] == ("MINTED", "sig-three")
        assert states[3][:2] == ("MINTED", "sig-three")
        assert states[4] == ("MINTED", None, "already_settled:ReplayedReading")
        assert states[5] == ("STORED", None, None)
        assert await s.fetch("SELECT settled_by_seq, minted_base_units FROM reading_states WHERE seq IN (1, 3) "
                             "ORDER BY seq") == [(3, 0), (3, 200_000_000)]
        assert await s.fetch("SELECT gateway_id, meter_id, settled_seq, tx_signature FROM mint_progress") == [
            ("gw", "m1", 4, None)]
        counts = await state_counts(s)
        assert (counts["STORED"], counts["MINTED"], counts["PROCESSING"], counts["FAILED"]) == (1, 5, 0, 0)


async def test_version_2_trades_get_their_event_ids(db_url: str) -> None:
    s = await _raw(db_url)
    try:
        await upgrade(s, target=2)
        await s.execute("INSERT INTO chain_events (signature, ix_index, event_index, slot, program, kind, version, "
                        "payload, applied_ms) VALUES ('sig', 1, 0, 5, 'trading', 'trade_executed', 1, '{}', 1)")
        await s.execute("INSERT INTO trades VALUES ('sig', 1, 0, 'Ord', 'S', 'B', 1, 2, 3, 0, 0, 100, 5)")
    finally:
        await s.close()
    async with await open_storage(db_url) as s:
        [(event_id,)] = await s.fetch("SELECT id FROM chain_events")
        assert await s.fetch("SELECT signature, event_id FROM trades") == [("sig", event_id)]


async def test_version_4_keeps_the_nonces_an_earlier_api_made(db_url: str) -> None:
    """Before version 5 the api created ``api_nonces`` itself at start-up; the upgrade takes it over."""
    s = await _raw(db_url)
    try:
        await upgrade(s, target=4)
        await s.execute("CREATE TABLE IF NOT EXISTS api_nonces (nonce TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL)")
        await s.execute("INSERT INTO api_nonces VALUES ('kept', 9999999999999)")
    finally:
        await s.close()
    async with await open_storage(db_url) as s:
        assert (await s.fetch("SELECT value FROM schema_info"))[0][0] == SCHEMA_VERSION
        assert await nonces.consume_nonce(s, "kept")


async def test_a_newer_database_is_refused(db_url: str) -> None:
    async with await open_storage(db_url) as s:
        await s.execute("UPDATE schema_info SET value = $1 WHERE key = 'schema_version'", SCHEMA_VERSION + 1)
    with pytest.raises(StorageError, match=f"schema version {SCHEMA_VERSION + 1}.*never downgraded"):
        await open_storage(db_url)


@pytest.mark.postgres
async def test_processes_starting_together_upgrade_once() -> None:
    with temp_database() as url:
        opened = await asyncio.gather(*(open_storage(url) for _ in range(4)))
        try:
            assert (await opened[0].fetch("SELECT value FROM schema_info"))[0][0] == SCHEMA_VERSION
        finally:
            for s in opened:
                await s.close()


async def test_a_transaction_commits_together_or_not_at_all(db_url: str) -> None:
    async with await open_storage(db_url) as s:
        with pytest.raises(RuntimeError, match="boom"):
            async with s.transaction() as tx:
                await tx.execute("INSERT INTO chain_cursor (name, slot, position, updated_ms) VALUES ('a', 1, 1, 1)")
                raise RuntimeError("boom")
        assert await s.fetch("SELECT name FROM chain_cursor") == []
        async with s.transaction() as tx:
            await tx.execute("INSERT INTO chain_cursor (name, slot, position, updated_ms) VALUES ('b', 1, 1, 1)")
            assert await tx.fetch("SELECT name FROM chain_cursor") == [("b",)]
        assert await s.fetch("SELECT name FROM chain_cursor") == [("b",)]
