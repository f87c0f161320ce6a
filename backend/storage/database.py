"""Backend storage: one interface, one set of SQL, two small dialect adapters.

PostgreSQL (asyncpg) in production and tests; SQLite (aiosqlite) as the embedded default for a
one-command demo. Both run the same statements, written with ``$1`` placeholders (SQLite accepts
them as ``?1``); only the bulk insert and the bulk lookup differ, because PostgreSQL does them in one
round trip with arrays that SQLite does not have.

Tables:

- ``gateways``: gateway id → Ed25519 public key, status (``active``/``disabled``), last status seen.
- ``readings``: one row per (gateway, meter, seq): the decoded fields, plus the exact signed bytes and
  signature so anyone can re-verify later. The primary key is what makes ingest idempotent.
- ``quarantine``: everything refused (unknown gateway, bad signature, malformed, conflicting bytes
  for a known (meter, seq)) with the reason, so no data is lost. Whatever a sender wrote is kept as
  bytes (``data``, ``signature``, ``payload``, ``topic``); the text columns hold only values that were
  validated first (a meter id of the reading format, a reason of ours), so hostile input can never
  make the database refuse the row.
- ``ingest_redeliveries``: messages the broker delivered again (MQTT DUP) while being processed,
  with a count — a message that keeps failing is quarantined as ``poison`` instead of retried forever.

Integers are SQL BIGINT (signed 64-bit). The wire format allows u64; a reading whose values do not
fit is quarantined with reason ``out_of_range`` (our gateways' epochs keep ``seq`` below 2**63).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

from backend.storage.schema import upgrade
from backend.storage.sql import I64_MAX, Sql, StorageConfigError, StorageError, now_ms

__all__ = [
    "I64_MAX",
    "GatewayRecord",
    "QuarantineRow",
    "ReadingRow",
    "Sql",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "open_storage",
]

_METER_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,16}")
_REASON_RE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class ReadingRow(NamedTuple):
    """One verified reading as stored. A named tuple: ingest makes one per reading on its hot path,
    and the columns of a batch are a plain ``zip(*rows)``."""

    gateway_id: str
    meter_id: str
    seq: int
    timestamp_ms: int
    import_wh: int
    export_wh: int
    power_w: int | None
    flags: int
    data: bytes
    signature: bytes
    received_ms: int

    @property
    def key(self) -> tuple[str, int]:
        return self.meter_id, self.seq


@dataclass(frozen=True, slots=True)
class QuarantineRow:
    gateway_id: str | None
    reason: str
    meter_id: str | None = None
    seq: int | None = None
    data: bytes | None = None
    signature: bytes | None = None
    payload: bytes | None = None  # the whole message, when it could not be split into readings
    received_ms: int = 0
    topic: bytes | None = None  # the MQTT topic, when it was not a valid one of ours


@dataclass(frozen=True, slots=True)
class GatewayRecord:
    gateway_id: str
    public_key: bytes
    status: str
    added_ms: int
    online: bool | None
    status_ms: int | None


_READING_COLUMNS = (
    "gateway_id, meter_id, seq, timestamp_ms, import_wh, export_wh, power_w, flags, data, signature, received_ms"
)
_READING_COLUMN_LIST = _READING_COLUMNS.split(", ")  # the order of ReadingRow's fields


class Storage(abc.ABC):
    """The backend's database: ingest's statements here, each data store's in its repository module
    (backend/storage/<store>.py), all through :class:`Sql`."""

    dialect = "sqlite"
    blob_type = "BLOB"
    serial_type = "INTEGER PRIMARY KEY"

    def __init__(self, where: str) -> None:
        self.where = where

    # -- dialect primitives --------------------------------------------------------------------

    @abc.abstractmethod
    async def execute(self, sql: str, *args: Any) -> None: ...

    @abc.abstractmethod
    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    @abc.abstractmethod
    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]: ...

    @abc.abstractmethod
    async def insert_readings(self, rows: Sequence[ReadingRow]) -> set[tuple[str, int]]:
        """Insert, skipping (gateway, meter, seq) already present; return the keys newly stored."""

    @abc.abstractmethod
    async def existing_data(self, gateway_id: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        """The stored signed bytes for these keys (those that exist)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- shared SQL ------------------------------------------------------------------------------

    async def migrate(self) -> None:
        """Create the schema, or upgrade an older one in place (backend/storage/schema.py)."""
        await upgrade(self)

    @abc.abstractmethod
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Sql]:
        """One database transaction: everything done through the yielded :class:`Sql` commits together,
        or not at all if the block raises."""

    @abc.abstractmethod
    async def table_exists(self, name: str) -> bool: ...

    async def ping(self) -> None:
        """Raise StorageError unless the database answers."""
        await self.fetch("SELECT 1")

    async def note_redelivery(self, digest: bytes) -> int:
        """Count one more delivery of a message the broker had already sent us; return the count."""
        rows = await self.fetch(
            "INSERT INTO ingest_redeliveries (digest, attempts, first_ms) VALUES ($1, 1, $2) "
            "ON CONFLICT (digest) DO UPDATE SET attempts = ingest_redeliveries.attempts + 1 RETURNING attempts",
            digest,
            now_ms(),
        )
        return int(rows[0][0])

    async def forget_redelivery(self, digest: bytes) -> None:
        await self.execute("DELETE FROM ingest_redeliveries WHERE digest = $1", digest)

    async def add_gateway(self, gateway_id: str, public_key: bytes, *, replace: bool = False) -> None:
        existing = await self.gateway(gateway_id)
        if existing is not None and existing.public_key != public_key and not replace:
            raise StorageError(
                f"gateway {gateway_id} is already commissioned with another key "
                f"(use --replace to re-key it; readings signed by the old key will then be rejected)"
            )
        if existing is None:
            await self.execute(
                "INSERT INTO gateways (gateway_id, public_key, status, added_ms) VALUES ($1, $2, 'active', $3)",
                gateway_id,
                public_key,
                now_ms(),
            )
        else:
            await self.execute(
                "UPDATE gateways SET public_key = $2, status = 'active' WHERE gateway_id = $1", gateway_id, public_key
            )

    async def set_gateway_status(self, gateway_id: str, status: str) -> None:
        await self.execute("UPDATE gateways SET status = $2 WHERE gateway_id = $1", gateway_id, status)

    async def record_presence(self, gateway_id: str, online: bool, timestamp_ms: int) -> None:
        if type(timestamp_ms) is not int or not 0 <= timestamp_ms <= I64_MAX:
            raise ValueError("status timestamp must be a 63-bit non-negative integer")
        await self.execute(
            "UPDATE gateways SET online = $2, status_ms = $3 WHERE gateway_id = $1", gateway_id, online, timestamp_ms
        )

    async def gateway(self, gateway_id: str) -> GatewayRecord | None:
        rows = await self.fetch(
            "SELECT gateway_id, public_key, status, added_ms, online, status_ms FROM gateways WHERE gateway_id = $1",
            gateway_id,
        )
        return _gateway_record(rows[0]) if rows else None

    async def gateways(self) -> list[GatewayRecord]:
        rows = await self.fetch(
            "SELECT gateway_id, public_key, status, added_ms, online, status_ms FROM gateways ORDER BY gateway_id"
        )
        return [_gateway_record(r) for r in rows]

    async def quarantine(self, rows: Sequence[QuarantineRow]) -> None:
        if rows:
            await self.executemany(
                "INSERT INTO quarantine "
                "(gateway_id, meter_id, seq, reason, data, signature, payload, received_ms, topic) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                [_quarantine_values(q) for q in rows],
            )

    async def quarantined_readings(self, gateway_id: str, reasons: Sequence[str]) -> list[tuple[int, bytes, bytes]]:
        """(quarantine id, data, signature) of a gateway's quarantined readings with these reasons."""
        rows = await self.fetch(
            "SELECT id, data, signature, reason FROM quarantine "
            "WHERE gateway_id = $1 AND data IS NOT NULL AND signature IS NOT NULL ORDER BY id",
            gateway_id,
        )
        return [(int(r[0]), bytes(r[1]), bytes(r[2])) for r in rows if r[3] in reasons]

    async def release_quarantine(self, ids: Sequence[int]) -> None:
        if ids:
            await self.executemany("DELETE FROM quarantine WHERE id = $1", [(i,) for i in ids])

    async def quarantine_counts(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in await self.fetch("SELECT reason, count(*) FROM quarantine GROUP BY reason")}

    async def reading_count(self, gateway_id: str | None = None) -> int:
        if gateway_id is None:
            return int((await self.fetch("SELECT count(*) FROM readings"))[0][0])
        return int((await self.fetch("SELECT count(*) FROM readings WHERE gateway_id = $1", gateway_id))[0][0])

    async def readings(self, gateway_id: str) -> list[ReadingRow]:
        rows = await self.fetch(
            f"SELECT {_READING_COLUMNS} FROM readings WHERE gateway_id = $1 ORDER BY meter_id, seq", gateway_id
        )
        return [
            ReadingRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], bytes(r[8]), bytes(r[9]), r[10]) for r in rows
        ]


def _text_or_none(value: object, pattern: re.Pattern[str]) -> str | None:
    return value if type(value) is str and pattern.fullmatch(value) else None


def _blob_or_none(value: object) -> bytes | None:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else None


def _quarantine_values(q: QuarantineRow) -> tuple[Any, ...]:
    """The columns of one quarantine row, each one a value the database cannot refuse: text only
    when it has the form we validate (else NULL — the bytes columns keep what was sent), integers
    only within BIGINT."""
    seq = q.seq if type(q.seq) is int and 0 <= q.seq <= I64_MAX else None
    received = q.received_ms if type(q.received_ms) is int and 0 < q.received_ms <= I64_MAX else now_ms()
    return (
        _text_or_none(q.gateway_id, _REASON_RE),  # gateway ids have the same form as reasons
        _text_or_none(q.meter_id, _METER_ID_RE),
        seq,
        _text_or_none(q.reason, _REASON_RE) or "invalid_reason",
        _blob_or_none(q.data),
        _blob_or_none(q.signature),
        _blob_or_none(q.payload),
        received,
        _blob_or_none(q.topic),
    )


def _gateway_record(r: Sequence[Any]) -> GatewayRecord:
    return GatewayRecord(r[0], bytes(r[1]), r[2], r[3], None if r[4] is None else bool(r[4]), r[5])


# --- PostgreSQL -------------------------------------------------------------------------------


class PostgresStorage(Storage):
    dialect = "postgresql"
    blob_type = "BYTEA"
    serial_type = "BIGSERIAL PRIMARY KEY"

    def __init__(self, pool: Any, where: str) -> None:
        super().__init__(where)
        self._pool = pool

    @classmethod
    async def connect(cls, url: str) -> PostgresStorage:
        import asyncpg

        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
        except (OSError, asyncpg.PostgresError) as exc:
            raise StorageError(f"cannot connect to PostgreSQL {_redact(url)}: {exc}") from exc
        return cls(pool, _redact(url))

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        async def call(conn: Any) -> Any:
            return await getattr(conn, method)(sql, *args)

        return await self._with_connection(call)

    async def _with_connection(self, work: Callable[[Any], Awaitable[Any]]) -> Any:
        import asyncpg

        try:
            async with self._pool.acquire() as conn:
                return await work(conn)
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
            asyncpg.InsufficientResourcesError,
        ) as exc:
            raise StorageError(f"PostgreSQL {self.where}: {exc}") from exc
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            raise StorageError(f"PostgreSQL {self.where} refused: {exc}", transient=False) from exc

    async def execute(self, sql: str, *args: Any) -> None:
        await self._run("execute", sql, *args)


    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._run("executemany", sql, list(rows))

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._run("fetch", sql, *args)]

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Sql]:
        import asyncpg

        try:
            async with self._pool.acquire() as conn, conn.transaction():
                yield _PostgresTx(conn, self.where)
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
            asyncpg.InsufficientResourcesError,
            asyncpg.SerializationError,
            asyncpg.DeadlockDetectedError,
        ) as exc:
            raise StorageError(f"PostgreSQL {self.where}: {exc}") from exc
        except (asyncpg.PostgresError, asyncpg.DataError) as exc:
            raise StorageError(f"PostgreSQL {self.where} refused: {exc}", transient=False) from exc

    async def table_exists(self, name: str) -> bool:
        return bool((await self.fetch("SELECT to_regclass($1) IS NOT NULL", name))[0][0])

    async def insert_readings(self, rows: Sequence[ReadingRow]) -> set[tuple[str, int]]:
        if not rows:
            return set()

        import asyncpg

        # Usually every reading is new: COPY straight into the table, in one transaction, and all were
        # stored. If any was there already (a resend), the COPY fails as a whole and nothing of it
        # stays; then COPY into a per-session temporary table and one INSERT … ON CONFLICT DO NOTHING
        # RETURNING says which are new. asyncpg's binary COPY encodes a batch at a fraction of the cost
        # of eleven array parameters (whose elements it type-checks one by one).
        async def work(conn: Any) -> set[tuple[str, int]]:
            try:
                async with conn.transaction():
                    await conn.copy_records_to_table("readings", records=rows, columns=_READING_COLUMN_LIST)
                return {(r[1], r[2]) for r in rows}
            except asyncpg.UniqueViolationError:
                pass
            async with conn.transaction():
                await conn.execute(
                    "SET LOCAL client_min_messages = warning; "
                    "CREATE TEMP TABLE IF NOT EXISTS incoming_readings (LIKE readings) ON COMMIT DELETE ROWS"
                )
                await conn.copy_records_to_table("incoming_readings", records=rows, columns=_READING_COLUMN_LIST)
                result = await conn.fetch(
                    f"INSERT INTO readings ({_READING_COLUMNS}) SELECT {_READING_COLUMNS} FROM incoming_readings "
                    "ON CONFLICT DO NOTHING RETURNING meter_id, seq"
                )
            return {(r[0], r[1]) for r in result}

        inserted: set[tuple[str, int]] = await self._with_connection(work)
        return inserted

    async def existing_data(self, gateway_id: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        if not keys:
            return {}
        meters, seqs = zip(*keys, strict=True)
        rows = await self.fetch(
            "SELECT r.meter_id, r.seq, r.data FROM readings r "
            "JOIN unnest($2::text[], $3::bigint[]) AS k(meter_id, seq) ON r.meter_id = k.meter_id AND r.seq = k.seq "
            "WHERE r.gateway_id = $1",
            gateway_id,
            list(meters),
            list(seqs),
        )
        return {(r[0], r[1]): bytes(r[2]) for r in rows}

    async def close(self) -> None:
        await self._pool.close()


class _PostgresTx:
    """One connection inside a transaction; errors are translated by :meth:`PostgresStorage.transaction`."""

    dialect = "postgresql"

    def __init__(self, conn: Any, where: str) -> None:
        self._conn = conn
        self.where = where

    async def execute(self, sql: str, *args: Any) -> None:
        await self._conn.execute(sql, *args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, list(rows))

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]


# --- SQLite -----------------------------------------------------------------------------------

_DOLLAR = re.compile(r"\$(\d+)")


class SqliteStorage(Storage):
    """One aiosqlite connection. A transaction spans several awaits, so every operation takes
    ``_lock``: another task's statement must not land inside someone else's BEGIN … COMMIT."""

    def __init__(self, db: Any, where: str) -> None:
        super().__init__(where)
        self._db = db
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None

    @classmethod
    async def connect(cls, path: Path) -> SqliteStorage:
        import aiosqlite

        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
            await db.execute_fetchall("PRAGMA journal_mode=WAL")
            await db.execute_fetchall("PRAGMA synchronous=FULL")
            await db.execute_fetchall("PRAGMA busy_timeout=5000")
        except Exception as exc:
            raise StorageError(f"cannot open SQLite database {path}: {exc}") from exc
        return cls(db, str(path))

    @staticmethod
    def _sql(sql: str) -> str:
        return _DOLLAR.sub(r"?\1", sql)

    async def _guard(self, coro: Any) -> Any:
        import sqlite3

        try:
            return await coro
        except (sqlite3.OperationalError, sqlite3.InterfaceError) as exc:  # locked, I/O, disk full
            raise StorageError(f"SQLite {self.where}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StorageError(f"SQLite {self.where} refused: {exc}", transient=False) from exc

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        if self._owner is not None and self._owner is asyncio.current_task():
            raise RuntimeError("inside Storage.transaction(), use the transaction's Sql, not the storage")
        async with self._lock:
            self._owner = asyncio.current_task()
            try:
                yield
            finally:
                self._owner = None

    async def _execute(self, sql: str, args: Sequence[Any]) -> None:
        await self._guard(self._db.execute(self._sql(sql), tuple(args)))

    async def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._guard(self._db.executemany(self._sql(sql), [tuple(r) for r in rows]))

    async def _fetch(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._guard(self._db.execute_fetchall(self._sql(sql), tuple(args)))]

    async def execute(self, sql: str, *args: Any) -> None:
        async with self._exclusive():
            await self._execute(sql, args)


    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        async with self.transaction() as tx:
            await tx.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        async with self._exclusive():
            return await self._fetch(sql, args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Sql]:
        async with self._exclusive():
            await self._guard(self._db.execute("BEGIN IMMEDIATE"))
            try:
                yield _SqliteTx(self)
            except BaseException:
                await self._db.execute("ROLLBACK")
                raise
            await self._guard(self._db.execute("COMMIT"))

    async def table_exists(self, name: str) -> bool:
        rows = await self.fetch("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = $1", name)
        return bool(rows[0][0])

    async def insert_readings(self, rows: Sequence[ReadingRow]) -> set[tuple[str, int]]:
        sql = (
            f"INSERT INTO readings ({_READING_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            "ON CONFLICT DO NOTHING RETURNING meter_id, seq"
        )
        inserted: set[tuple[str, int]] = set()
        async with self.transaction() as tx:
            for r in rows:
                got = await tx.fetch(sql, *r)
                inserted.update((g[0], g[1]) for g in got)
        return inserted

    async def existing_data(self, gateway_id: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
        out: dict[tuple[str, int], bytes] = {}
        for meter_id, seq in keys:
            rows = await self.fetch(
                "SELECT data FROM readings WHERE gateway_id = $1 AND meter_id = $2 AND seq = $3",
                gateway_id,
                meter_id,
                seq,
            )
            if rows:
                out[(meter_id, seq)] = bytes(rows[0][0])
        return out

    async def close(self) -> None:
        await self._db.close()


class _SqliteTx:
    dialect = "sqlite"

    def __init__(self, storage: SqliteStorage) -> None:
        self._s = storage
        self.where = storage.where

    async def execute(self, sql: str, *args: Any) -> None:
        await self._s._execute(sql, args)

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        await self._s._executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._s._fetch(sql, args)


def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


async def open_storage(url: str) -> Storage:
    """``postgresql://…`` (asyncpg) or ``sqlite:///path/to/file.db``; the schema is created/checked."""
    if url.startswith(("postgresql://", "postgres://")):
        storage: Storage = await PostgresStorage.connect(url)
    elif url.startswith("sqlite:///"):
        storage = await SqliteStorage.connect(Path(url[len("sqlite://") :]))
    else:
        raise StorageConfigError(f"database URL {_redact(url)!r} must start with postgresql:// or sqlite:///")
    try:
        await storage.migrate()
    except BaseException:
        await storage.close()
        raise
    return storage
