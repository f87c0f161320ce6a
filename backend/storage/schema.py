"""The database schema and its versions: each version is a migration from the one before, run in place.

``upgrade(storage)`` runs at every start-up (``open_storage``): a new database gets every migration, an
existing one the migrations above its ``schema_info.schema_version``, each in one transaction together
with the new version number, so a crash leaves the database at one version or the next, never between.
Several processes starting at once on one PostgreSQL database take turns (an advisory lock); on SQLite
``BEGIN IMMEDIATE`` does the same. A database newer than this software is refused, never downgraded.

Versions:

1. ``gateways``, ``readings``, ``quarantine`` (ingest).
2. The design's data stores (../shared/design/data-flow-diagrams.md §6), adapted to what our programs hold:
   D1 ``users`` and ``meters``; D2's lifecycle ``reading_states`` (a reading without a row is STORED) and
   ``mint_progress``; D3 ``token_accounts`` (+ view ``wallet_balances``); D4 ``orders``; D5 ``trades``;
   D6 ``certificates``; D7 ``payments``; the indexer's ``chain_events``, ``event_wallets``,
   ``chain_transactions`` and ``chain_cursor``. The minting worker's ``settlements`` table (created on
   demand by version-1 backends) becomes reading states: each settled reading MINTED with its
   transaction, the readings it passed over MINTED by the settlement that covered them.
3. ``trades.event_id`` and ``payments.event_id``: the ``chain_events`` id of the event that recorded the
   row, so lists come in the chain's order (several trades can share a second and a slot).
4. ``quarantine.topic`` (the raw topic of a message refused for its topic) and ``ingest_redeliveries``
   (messages the broker delivered again while they were being processed: after three, ``poison``).
5. ``api_nonces``: the api role's single-use sign-in nonces when no Redis is configured
   (backend/storage/nonces.py); the table earlier api versions made themselves at their start (``CREATE
   TABLE IF NOT EXISTS``, the same columns) is taken over as it is.
6. ``api_certificate_requests``: the certificate index each prepared, not yet landed certificate request
   holds, one per meter (backend/storage/certificate_requests.py).

Conventions: amounts in base units as BIGINT (GRID 10**9 per kWh, THBC 10**6 per baht); wallet and PDA
addresses as base58 TEXT; chain times (``*_at``) in unix seconds as the programs store them, backend
times (``*_ms``) in milliseconds since the epoch. docs/backend.md describes every table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from backend.storage.sql import Sql, StorageError

__all__ = ["MIGRATIONS", "SCHEMA_V1", "SCHEMA_VERSION", "Database", "Migration", "upgrade"]

_LOCK_KEY = 0x67747853  # "gtxS": the advisory lock that serialises schema upgrades on PostgreSQL

# The tables of schema version 1, as the first backends created them. Later versions change them only
# through migrations (backend/storage/schema.py), so a database of any earlier version upgrades in place.
SCHEMA_V1 = [
    "CREATE TABLE IF NOT EXISTS schema_info (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS gateways (
        gateway_id TEXT PRIMARY KEY,
        public_key {blob} NOT NULL,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
        added_ms BIGINT NOT NULL,
        online BOOLEAN,
        status_ms BIGINT
    )""",
    """CREATE TABLE IF NOT EXISTS readings (
        gateway_id TEXT NOT NULL,
        meter_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        timestamp_ms BIGINT NOT NULL,
        import_wh BIGINT NOT NULL,
        export_wh BIGINT NOT NULL,
        power_w INTEGER,
        flags INTEGER NOT NULL,
        data {blob} NOT NULL,
        signature {blob} NOT NULL,
        received_ms BIGINT NOT NULL,
        PRIMARY KEY (gateway_id, meter_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        id {serial},
        gateway_id TEXT,
        meter_id TEXT,
        seq BIGINT,
        reason TEXT NOT NULL,
        data {blob},
        signature {blob},
        payload {blob},
        received_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS quarantine_gateway ON quarantine (gateway_id, reason)",
]

_V2 = [
    # --- D1: users and meters -------------------------------------------------------------------
    """CREATE TABLE users (
        wallet_address TEXT PRIMARY KEY,
        user_type TEXT NOT NULL CHECK (user_type IN ('prosumer', 'consumer')),
        name TEXT,
        pda_address TEXT UNIQUE,
        registered_at BIGINT,
        registration_signature TEXT,
        created_ms BIGINT NOT NULL,
        last_active_ms BIGINT
    )""",
    """CREATE TABLE meters (
        meter_id TEXT PRIMARY KEY,
        pda_address TEXT NOT NULL UNIQUE,
        owner_wallet TEXT NOT NULL,
        meter_key {blob} NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('PENDING', 'ACTIVE', 'SUSPENDED', 'DECOMMISSIONED')),
        registered_at BIGINT,
        settled_seq BIGINT,
        settled_mark_wh BIGINT,
        minted_base_units BIGINT NOT NULL DEFAULT 0,
        updated_signature TEXT,
        updated_slot BIGINT,
        updated_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX meters_owner ON meters (owner_wallet)",
    # --- D2: the reading lifecycle (no row: STORED) -----------------------------------------------
    """CREATE TABLE reading_states (
        gateway_id TEXT NOT NULL,
        meter_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('PROCESSING', 'MINTED', 'FAILED')),
        tx_signature TEXT,
        settled_by_seq BIGINT,
        minted_base_units BIGINT NOT NULL DEFAULT 0,
        baseline BOOLEAN NOT NULL DEFAULT FALSE,
        reason TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms BIGINT,
        claimed_by TEXT,
        claimed_ms BIGINT,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (gateway_id, meter_id, seq)
    )""",
    "CREATE INDEX reading_states_queue ON reading_states (state, next_attempt_ms)",
    """CREATE TABLE mint_progress (
        gateway_id TEXT NOT NULL,
        meter_id TEXT NOT NULL,
        settled_seq BIGINT,
        tx_signature TEXT,
        claimed_by TEXT,
        claimed_ms BIGINT,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (gateway_id, meter_id)
    )""",
    # --- the indexer: what it applied, where it is ------------------------------------------------
    """CREATE TABLE chain_transactions (
        signature TEXT PRIMARY KEY,
        slot BIGINT NOT NULL,
        position BIGINT NOT NULL,
        block_time BIGINT,
        events INTEGER NOT NULL,
        applied_ms BIGINT NOT NULL
    )""",
    """CREATE TABLE chain_events (
        id {serial},
        signature TEXT NOT NULL,
        ix_index INTEGER NOT NULL,
        event_index INTEGER NOT NULL,
        slot BIGINT NOT NULL,
        block_time BIGINT,
        program TEXT NOT NULL,
        kind TEXT NOT NULL,
        version INTEGER NOT NULL,
        subject TEXT,
        meter_id TEXT,
        payload TEXT NOT NULL,
        applied_ms BIGINT NOT NULL,
        UNIQUE (signature, ix_index, event_index)
    )""",
    "CREATE INDEX chain_events_kind ON chain_events (kind, id)",
    "CREATE INDEX chain_events_subject ON chain_events (subject, id)",
    "CREATE INDEX chain_events_meter ON chain_events (meter_id, id)",
    """CREATE TABLE event_wallets (
        wallet TEXT NOT NULL,
        event_id BIGINT NOT NULL,
        PRIMARY KEY (wallet, event_id)
    )""",
    """CREATE TABLE chain_cursor (
        name TEXT PRIMARY KEY,
        signature TEXT,
        slot BIGINT NOT NULL,
        position BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    )""",
    # --- D3: token ledger mirror ------------------------------------------------------------------
    """CREATE TABLE token_accounts (
        address TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        mint TEXT NOT NULL,
        asset TEXT NOT NULL CHECK (asset IN ('GRID', 'THBC')),
        amount BIGINT NOT NULL,
        escrow_order TEXT,
        closed BOOLEAN NOT NULL DEFAULT FALSE,
        slot BIGINT NOT NULL,
        position BIGINT NOT NULL,
        signature TEXT NOT NULL,
        updated_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX token_accounts_owner ON token_accounts (owner, asset)",
    """CREATE VIEW wallet_balances AS
        SELECT owner AS wallet, asset, sum(amount) AS amount, count(*) AS accounts
        FROM token_accounts WHERE escrow_order IS NULL AND NOT closed GROUP BY owner, asset""",
    # --- D4: order book ---------------------------------------------------------------------------
    """CREATE TABLE orders (
        address TEXT PRIMARY KEY,
        order_id BIGINT NOT NULL,
        seller TEXT NOT NULL,
        vault TEXT,
        amount BIGINT NOT NULL,
        remaining BIGINT NOT NULL,
        price BIGINT NOT NULL,
        fee_bps INTEGER,
        proceeds BIGINT NOT NULL DEFAULT 0,
        escrow BIGINT NOT NULL DEFAULT 0,
        state TEXT NOT NULL
            CHECK (state IN ('CREATED', 'ACTIVE', 'PARTIALLY_FILLED', 'FILLED', 'CANCELLED', 'EXPIRED')),
        created_at BIGINT NOT NULL,
        expires_at BIGINT,
        closed_at BIGINT,
        created_signature TEXT NOT NULL,
        updated_signature TEXT NOT NULL,
        updated_slot BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX orders_book ON orders (state, price, created_at)",
    "CREATE INDEX orders_seller ON orders (seller, created_at)",
    "CREATE INDEX orders_open_expiry ON orders (expires_at) WHERE state IN ('ACTIVE', 'PARTIALLY_FILLED')",
    # --- D5: trade history ------------------------------------------------------------------------
    """CREATE TABLE trades (
        signature TEXT NOT NULL,
        ix_index INTEGER NOT NULL,
        event_index INTEGER NOT NULL,
        order_address TEXT NOT NULL,
        seller TEXT NOT NULL,
        buyer TEXT NOT NULL,
        amount BIGINT NOT NULL,
        price BIGINT NOT NULL,
        cost BIGINT NOT NULL,
        fee BIGINT NOT NULL,
        remaining BIGINT NOT NULL,
        executed_at BIGINT NOT NULL,
        slot BIGINT NOT NULL,
        PRIMARY KEY (signature, ix_index, event_index)
    )""",
    "CREATE INDEX trades_order ON trades (order_address)",
    "CREATE INDEX trades_seller ON trades (seller, executed_at)",
    "CREATE INDEX trades_buyer ON trades (buyer, executed_at)",
    "CREATE INDEX trades_time ON trades (executed_at)",
    # --- D6: certificate registry -----------------------------------------------------------------
    """CREATE TABLE certificates (
        address TEXT PRIMARY KEY,
        meter_address TEXT NOT NULL,
        meter_id TEXT,
        cert_index BIGINT NOT NULL,
        holder TEXT NOT NULL,
        from_wh BIGINT NOT NULL,
        to_wh BIGINT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('PENDING', 'VALID', 'RETIRED', 'REVOKED', 'EXPIRED')),
        revoke_reason INTEGER,
        issued_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        validated_at BIGINT,
        closed_at BIGINT,
        issued_signature TEXT NOT NULL,
        updated_signature TEXT NOT NULL,
        updated_slot BIGINT NOT NULL,
        updated_ms BIGINT NOT NULL,
        UNIQUE (meter_address, cert_index)
    )""",
    "CREATE INDEX certificates_holder ON certificates (holder)",
    "CREATE INDEX certificates_open_expiry ON certificates (expires_at) WHERE status IN ('PENDING', 'VALID')",
    # --- D7: payment records ----------------------------------------------------------------------
    """CREATE TABLE payments (
        signature TEXT NOT NULL,
        ix_index INTEGER NOT NULL,
        event_index INTEGER NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ISSUE', 'REDEEM', 'CONSUME')),
        wallet TEXT NOT NULL,
        asset TEXT NOT NULL CHECK (asset IN ('GRID', 'THBC')),
        amount BIGINT NOT NULL,
        reference TEXT,
        executed_at BIGINT,
        slot BIGINT NOT NULL,
        PRIMARY KEY (signature, ix_index, event_index)
    )""",
    "CREATE INDEX payments_wallet ON payments (wallet, executed_at)",
    "CREATE INDEX payments_reference ON payments (reference)",
]

# Version-1 minting workers kept their outcomes in ``settlements``; from version 2 they are reading states.
_V2_FROM_SETTLEMENTS = [
    """INSERT INTO reading_states (gateway_id, meter_id, seq, state, tx_signature, settled_by_seq,
                                   minted_base_units, reason, updated_ms)
       SELECT gateway_id, meter_id, seq, 'MINTED', tx_signature, seq, minted_base_units,
              CASE WHEN outcome = 'already_settled' THEN 'already_settled:' || refusal END, settled_ms
       FROM settlements""",
    """INSERT INTO mint_progress (gateway_id, meter_id, settled_seq, tx_signature, updated_ms)
       SELECT s.gateway_id, s.meter_id, s.seq, s.tx_signature, s.settled_ms FROM settlements s
       WHERE s.seq = (SELECT max(t.seq) FROM settlements t
                      WHERE t.gateway_id = s.gateway_id AND t.meter_id = s.meter_id)""",
    # A reading below a later settlement that was never sent itself was covered by the first settlement
    # above it (counters are cumulative): MINTED by that transaction.
    """INSERT INTO reading_states (gateway_id, meter_id, seq, state, tx_signature, settled_by_seq, updated_ms)
       SELECT r.gateway_id, r.meter_id, r.seq, 'MINTED', s.tx_signature, s.seq, s.settled_ms
       FROM readings r JOIN settlements s ON s.gateway_id = r.gateway_id AND s.meter_id = r.meter_id
       WHERE s.seq = (SELECT min(t.seq) FROM settlements t
                      WHERE t.gateway_id = r.gateway_id AND t.meter_id = r.meter_id AND t.seq > r.seq)
         AND NOT EXISTS (SELECT 1 FROM settlements u
                         WHERE u.gateway_id = r.gateway_id AND u.meter_id = r.meter_id AND u.seq = r.seq)""",
    "DROP TABLE settlements",
]


# Trades and payments in the chain's order: the event id the indexer gave them (apply order = chain order).
_V3 = [
    "ALTER TABLE trades ADD COLUMN event_id BIGINT",
    "ALTER TABLE payments ADD COLUMN event_id BIGINT",
    """UPDATE trades SET event_id = (SELECT e.id FROM chain_events e WHERE e.signature = trades.signature
                                     AND e.ix_index = trades.ix_index AND e.event_index = trades.event_index)""",
    """UPDATE payments SET event_id = (SELECT e.id FROM chain_events e WHERE e.signature = payments.signature
                                       AND e.ix_index = payments.ix_index AND e.event_index = payments.event_index)""",
    "CREATE INDEX trades_event ON trades (event_id)",
    "CREATE INDEX payments_event ON payments (event_id)",
]


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    statements: Sequence[str]
    # Run after the statements, inside the same transaction (data moves that depend on what exists).
    after: Callable[[Sql], Awaitable[None]] | None = None


async def _v2_data(tx: Sql) -> None:
    if await _has_table(tx, "settlements"):
        for statement in _V2_FROM_SETTLEMENTS:
            await tx.execute(statement)


# Ingest under hostile input (issue 8): the raw topic of a message that came on a topic not ours, and
# the redelivery ledger behind the "poison" verdict (backend/ingest/receiver.py).
_V4 = [
    "ALTER TABLE quarantine ADD COLUMN topic {blob}",
    """CREATE TABLE ingest_redeliveries (
        digest {blob} PRIMARY KEY,
        attempts INTEGER NOT NULL,
        first_ms BIGINT NOT NULL
    )""",
]

# The api's sign-in nonces (without Redis). IF NOT EXISTS: api versions before schema 5 created the table
# themselves at start-up, with these same columns.
_V5 = [
    "CREATE TABLE IF NOT EXISTS api_nonces (nonce TEXT PRIMARY KEY, expires_ms BIGINT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS api_nonces_expiry ON api_nonces (expires_ms)",
]

# The api's certificate requests in flight: one per meter, the index its prepared Issue transaction uses.
_V6 = [
    """CREATE TABLE api_certificate_requests (
        meter_id TEXT PRIMARY KEY,
        cert_index BIGINT NOT NULL,
        to_wh BIGINT NOT NULL,
        digest TEXT NOT NULL,
        expires_ms BIGINT NOT NULL
    )""",
    "CREATE INDEX api_certificate_requests_digest ON api_certificate_requests (digest)",
]

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "ingest: gateways, readings, quarantine", SCHEMA_V1),
    Migration(2, "data stores D1-D7, reading lifecycle, indexer cursor and events", _V2, _v2_data),
    Migration(3, "trades and payments carry their event id (chain order)", _V3),
    Migration(4, "ingest: quarantine.topic, redelivery ledger", _V4),
    Migration(5, "the api's sign-in nonces", _V5),
    Migration(6, "the api's certificate requests in flight", _V6),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


async def _has_table(tx: Sql, name: str) -> bool:
    if tx.dialect == "postgresql":
        rows = await tx.fetch("SELECT to_regclass($1) IS NOT NULL", name)
    else:
        rows = await tx.fetch("SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = $1", name)
    return bool(rows[0][0])


class Database(Protocol):
    """What an upgrade needs of a storage (backend/storage/database.py's ``Storage``)."""

    where: str
    blob_type: str
    serial_type: str

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Sql]: ...


async def upgrade(storage: Database, *, target: int = SCHEMA_VERSION) -> int:
    """Bring the schema to ``target`` (default: the newest); return the version found before."""
    async with storage.transaction() as tx:
        if tx.dialect == "postgresql":
            await tx.execute(f"SELECT pg_advisory_xact_lock({_LOCK_KEY})")
        await tx.execute("CREATE TABLE IF NOT EXISTS schema_info (key TEXT PRIMARY KEY, value BIGINT NOT NULL)")
        rows = await tx.fetch("SELECT value FROM schema_info WHERE key = 'schema_version'")
        found = int(rows[0][0]) if rows else 0
        if found > SCHEMA_VERSION:
            raise StorageError(
                f"database {storage.where} has schema version {found}, this backend knows up to {SCHEMA_VERSION}: "
                "run a newer backend (a database is never downgraded)",
                transient=False,
            )
        for migration in MIGRATIONS:
            if found < migration.version <= target:
                for statement in migration.statements:
                    await tx.execute(statement.format(blob=storage.blob_type, serial=storage.serial_type))
                if migration.after is not None:
                    await migration.after(tx)
        if rows:
            await tx.execute("UPDATE schema_info SET value = $1 WHERE key = 'schema_version'", max(found, target))
        else:
            await tx.execute("INSERT INTO schema_info (key, value) VALUES ('schema_version', $1)", target)
    return found
