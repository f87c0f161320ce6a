"""The durable outbox: signed readings in SQLite until the backend has acknowledged them.

A reading counts as taken only once its transaction has committed (WAL, ``synchronous=FULL`` by
default, so a power cut cannot roll back a sequence number that may already have left the box).

Sequence numbers: ``seq = (epoch << 40) | counter``. The counter is gap-free per meter within an
epoch and lives in the database, in the same transaction as the readings. The epoch lives in a small
file outside the database (next to the device key, written atomically and fsynced) and increases
whenever the database is created anew — after first start, deletion or corruption — so a reset
gateway continues above every number it ever used instead of being taken for a replay. Epochs stay
below 2**23 so every ``seq`` fits a signed 64-bit SQL integer.

The size is bounded by ``max_bytes``: when the backlog outgrows it, :meth:`Outbox.thin` drops every
other reading of each meter from the oldest part of the backlog, never a meter's first or latest
reading. The counters are cumulative, so energy totals survive thinning; only time resolution of the
oldest backlog is lost, and the count of thinned readings is kept (and reported in the status message).

The disk bounds it too (:mod:`gateway.disk`): the database may only grow while the WAL keeps room for
deletes and checkpoints, and a reserve file is given back when the filesystem itself fills up, so a full
disk is a state the outbox gets out of (:meth:`Outbox.make_room`) rather than one that wedges it.
Deletes and thinning run in small transactions, each followed by a checkpoint while space is short.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NamedTuple, Self, TypeVar

import aiosqlite
from pydantic import BaseModel, ConfigDict, Field

from gateway.disk import DiskGuard, DiskState, mib
from gateway.sample import MeterSample
from gridtokenx.batch import entry_prefix, join_entry
from gridtokenx.reading import Reading, ReadingFormatError, SignedReading, decode

__all__ = [
    "COUNTER_BITS",
    "MAX_EPOCH",
    "ROW_BYTES",
    "SCHEMA_VERSION",
    "Outbox",
    "OutboxCorruptError",
    "OutboxError",
    "OutboxFullError",
    "OutboxPathError",
    "OutboxRow",
    "OutboxSettings",
    "OutboxStats",
    "read_epoch",
    "write_epoch",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

SCHEMA_VERSION = 1
COUNTER_BITS = 40
MAX_EPOCH = (1 << 23) - 1
# Bytes one row costs on disk — signed bytes, the pre-encoded JSON fields (so a backlog drains without
# decoding), unique index, page slack — measured with 16-character meter ids (about 330), rounded
# up: max_bytes // ROW_BYTES is the backlog capacity in readings.
ROW_BYTES = 384
FIXED_BYTES = 64 * 1024
# Rows per delete transaction (acks, thinning): small, so a delete's WAL pages fit the WAL's allowance.
_DELETE_CHUNK = 256
# Pages one write transaction may add (write_batch rows and their index entries, generously).
_TXN_PAGES = 128

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE counters (meter_id TEXT PRIMARY KEY, next_counter INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: the publisher's cursor relies on it
    meter_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    sig BLOB NOT NULL,
    fields BLOB NOT NULL  -- the decoded fields as sent (gridtokenx.batch.entry_prefix), made once at signing
);
CREATE UNIQUE INDEX outbox_key ON outbox (meter_id, seq);
"""


class OutboxSettings(BaseModel):
    """``[outbox]`` in the gateway configuration."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Path("/var/lib/gridtokenx/outbox.db")
    # The backlog bound. 64 MiB holds about 175k readings: 100 meters polled every 10 s for 2 days.
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=256 * 1024)
    # FULL fsyncs every commit: a power cut never loses a committed reading nor rolls a sequence
    # number back. NORMAL is faster on slow SD cards but can lose the last commits on power loss.
    synchronous: Literal["full", "normal"] = "full"
    # Readings per write transaction (polls arriving together are committed together). Small enough
    # that one transaction's WAL pages fit wal_allowance_bytes.
    write_batch: int = Field(default=256, ge=1, le=100_000)
    # The writer commits at most this often: polls arriving within it share one transaction (and one
    # fsync), which is most of a reading's cost at 1 Hz otherwise. A reading waits at most this long.
    commit_interval_s: float = Field(default=0.2, ge=0, le=5)
    # Samples waiting in memory for the writer (disk stalls, disk full) before the oldest are dropped:
    # at most this many, and at most memory_bytes of them.
    memory_queue: int = Field(default=20_000, ge=10)
    memory_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # Room kept on the disk for getting out of a full disk (deletes, checkpoints, thinning).
    reserve_bytes: int = Field(default=256 * 1024, ge=0)
    # Room the WAL may take; the database only grows while this much stays free (gateway.disk).
    wal_allowance_bytes: int = Field(default=512 * 1024, ge=64 * 1024)

    @property
    def capacity_rows(self) -> int:
        # Less the fixed cost of an empty database (schema pages of every table and index).
        return max(16, (self.max_bytes - FIXED_BYTES) // ROW_BYTES)


class OutboxError(Exception):
    """Base of outbox errors; messages name the database file."""


class OutboxFullError(OutboxError):
    """The disk (or the database's page limit) is full: thin the backlog and retry later."""


class OutboxPathError(OutboxError):
    """The outbox's directory or file cannot be created or opened: a configuration problem."""


class OutboxCorruptError(OutboxError):
    """The database file is damaged. Restarting recovers: see :meth:`Outbox.open`."""


class OutboxSchemaError(OutboxError):
    """The database was written by a newer version of this software."""


class OutboxRow(NamedTuple):
    """One stored reading. A named tuple: the publisher reads them by the hundred per message."""

    id: int
    meter_id: str
    seq: int
    data: bytes
    signature: bytes
    fields: bytes  # gridtokenx.batch.entry_prefix of the reading

    @property
    def signed(self) -> SignedReading:
        return SignedReading(self.data, self.signature)

    @property
    def entry(self) -> bytes:
        """The reading as it goes into a batch message."""
        return join_entry(self.fields, self.data, self.signature)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    epoch: int
    pending: int
    thinned_total: int
    used_bytes: int
    capacity_rows: int
    salvaged: int
    disk: DiskState | None = None


# --- the boot epoch file -----------------------------------------------------------------------


def read_epoch(path: Path) -> int:
    """The last epoch used, 0 if the file does not exist yet."""
    try:
        text = Path(path).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise OutboxError(
            f"epoch file {path} holds {text[:20]!r}, not an integer: restore it or, if it is lost for good, "
            "delete it together with the outbox database (sequence numbers then restart from epoch 1)"
        ) from None
    if not 0 <= value <= MAX_EPOCH:
        raise OutboxError(f"epoch file {path} holds {value}, outside 0..{MAX_EPOCH}")
    return value


def write_epoch(path: Path, value: int) -> None:
    """Write atomically (temp file, fsync, rename, fsync the directory): never a half-written epoch."""
    path = Path(path)
    if not 0 < value <= MAX_EPOCH:
        raise OutboxError(f"epoch {value} is outside 1..{MAX_EPOCH}: this device key has used all its epochs")
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, f"{value}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# --- the outbox --------------------------------------------------------------------------------


def _translate(exc: sqlite3.Error, path: Path, doing: str) -> OutboxError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_FULL:
        return OutboxFullError(f"outbox {path} is full while {doing}: {exc}")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return OutboxCorruptError(
            f"outbox {path} is corrupt ({exc}) while {doing}; restart the gateway: the damaged file is "
            "moved aside, readable readings are salvaged and a new epoch starts"
        )
    return OutboxError(f"outbox {path}: {exc} while {doing}")


class Outbox:
    """One writer, one reader of the same SQLite file, both in this process. Use :meth:`open`."""

    def __init__(self, db: aiosqlite.Connection, settings: OutboxSettings, epoch: int) -> None:
        self._db = db
        self.settings = settings
        self.path = settings.path
        self.epoch = epoch
        self._counters: dict[str, int] = {}
        self._rows = 0
        self._thinned_total = 0
        self.salvaged = 0
        self.disk = DiskGuard(
            settings.path, reserve_bytes=settings.reserve_bytes, wal_allowance=settings.wal_allowance_bytes
        )
        self._page_size = 4096
        self._page_limit_cap: int | None = None
        self.room_freed = asyncio.Event()  # set when acknowledged readings were deleted (the writer waits)
        self._full_logged_at = -1e9
        self._full_logged_state = ""
        self._full_announced = False
        # One connection shared by the writer, the publisher and the ack handler: every use is
        # serialised, so no task ever sees (and publishes) another's uncommitted rows, and
        # transactions never interleave.
        self._lock = asyncio.Lock()

    # -- opening, checking, recovering ----------------------------------------------------------

    @classmethod
    async def open(cls, settings: OutboxSettings, epoch_path: Path) -> Outbox:
        """Open or create the database, check its integrity, and settle the epoch.

        Recovery is defined, not a crash loop: a database that fails ``PRAGMA quick_check`` or is not
        a database at all is renamed to ``<path>.corrupt-<unix time>``, every row that can still be
        read is copied into a fresh database (it keeps its sequence number), and a new epoch begins.
        """
        path = settings.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise OutboxPathError(
                f"outbox directory {path.parent} cannot be created: {exc.strerror or exc} (check [outbox] path "
                "and the permissions of its parent directories)"
            ) from None
        if path.is_dir():
            raise OutboxPathError(f"outbox path {path} is a directory: [outbox] path names the database file")
        salvage: list[tuple[str, int, bytes, bytes, bytes]] = []
        if path.exists():
            problem = await _check_file(path)
            if problem is not None:
                aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                log.error("outbox %s failed its integrity check (%s): moving it to %s", path, problem, aside)
                for suffix in ("", "-wal", "-shm"):
                    src = Path(f"{path}{suffix}")
                    if src.exists():  # noqa: ASYNC240 - start-up, nothing else runs yet
                        os.replace(src, Path(f"{aside}{suffix}"))
                salvage = await _salvage(aside)
                log.error("outbox: salvaged %d readable readings from %s", len(salvage), aside)
        try:
            db = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_CANTOPEN:
                raise OutboxPathError(f"outbox {path} cannot be opened: {exc}") from None
            raise _translate(exc, path, "opening") from exc
        try:
            outbox = await cls._settle(db, settings, epoch_path)
            if salvage:
                await outbox._insert_salvage(salvage)
            return outbox
        except BaseException:
            await db.close()
            raise

    @classmethod
    async def _settle(cls, db: aiosqlite.Connection, settings: OutboxSettings, epoch_path: Path) -> Outbox:
        path = settings.path
        try:
            await db.execute_fetchall("PRAGMA journal_mode=WAL")
            await db.execute_fetchall(f"PRAGMA synchronous={settings.synchronous.upper()}")
            # The WAL is checkpointed at half its allowance, and keeps up to the whole allowance of blocks
            # after a checkpoint (gateway.disk): room for deletes that no other program can take.
            half = settings.wal_allowance_bytes // 2
            page_size = int((await db.execute_fetchall("PRAGMA page_size"))[0][0])  # type: ignore[index]
            await db.execute_fetchall(f"PRAGMA journal_size_limit={settings.wal_allowance_bytes}")
            await db.execute_fetchall(f"PRAGMA wal_autocheckpoint={max(16, half // page_size)}")
            await db.execute_fetchall("PRAGMA busy_timeout=5000")
            # 1 MiB of page cache (SQLite's default is 2 MiB): the access pattern is append at the
            # end, read near the start; the OS page cache does the rest, and the daemon stays small.
            # (256 KiB saved only ~0.3 MB of RSS in the 10-minute soak but cost ~3 µs of gateway CPU
            # per reading while draining a backlog: the ack deletes walk the (meter_id, seq) index.)
            await db.execute_fetchall("PRAGMA cache_size=-1024")
            tables = {r[0] for r in await db.execute_fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
            file_epoch = read_epoch(epoch_path)
            if "meta" not in tables:
                epoch = file_epoch + 1
                # The file first: if we die before the schema commits, the next start bumps again,
                # and a skipped epoch costs nothing.
                write_epoch(epoch_path, epoch)
                file_epoch = epoch
                await db.execute("BEGIN IMMEDIATE")
                for stmt in filter(str.strip, _SCHEMA.split(";")):  # executescript would COMMIT early
                    await db.execute(stmt)
                await db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("schema_version", SCHEMA_VERSION),
                        ("epoch", epoch),
                        ("thinned_total", 0),
                        ("created_ms", int(time.time() * 1000)),
                    ],
                )
                await db.execute("COMMIT")
                log.info("outbox %s created, sequence epoch %d", path, epoch)
            outbox = cls(db, settings, 0)
            meta = await outbox._meta()
            version = meta.get("schema_version")
            if version != SCHEMA_VERSION:
                raise OutboxSchemaError(
                    f"outbox {path} has schema version {version}, this software knows {SCHEMA_VERSION}: "
                    "run the matching gateway version, or move the file away to start a new outbox"
                )
            epoch = meta["epoch"]
            if file_epoch > epoch:
                # The database is older than the epoch file (restored from a copy, or another box's):
                # its counters may be behind numbers already sent, so continue in a fresh epoch.
                epoch = file_epoch + 1
                write_epoch(epoch_path, epoch)
                await db.execute("BEGIN IMMEDIATE")
                await db.execute("UPDATE meta SET value=? WHERE key='epoch'", (epoch,))
                await db.execute("DELETE FROM counters")
                await db.execute("COMMIT")
                log.warning("outbox %s is older than epoch file %s: starting epoch %d", path, epoch_path, epoch)
            elif file_epoch < epoch:
                # The epoch file was lost or rolled back; the database knows better.
                write_epoch(epoch_path, epoch)
                log.warning("epoch file %s was behind the outbox (%d < %d): rewritten", epoch_path, file_epoch, epoch)
            outbox.epoch = epoch
            outbox._thinned_total = meta.get("thinned_total", 0)
            outbox._counters = dict(
                await db.execute_fetchall("SELECT meter_id, next_counter FROM counters")  # type: ignore[arg-type]
            )
            outbox._rows = (await db.execute_fetchall("SELECT count(*) FROM outbox"))[0][0]  # type: ignore[index]
            outbox._page_size = page_size
            outbox.disk.ensure_reserve()
            await outbox._apply_page_limit()
            return outbox
        except sqlite3.Error as exc:
            raise _translate(exc, path, "opening") from exc

    async def _meta(self) -> dict[str, int]:
        return dict(await self._db.execute_fetchall("SELECT key, value FROM meta"))  # type: ignore[arg-type]

    async def _insert_salvage(self, rows: list[tuple[str, int, bytes, bytes, bytes]]) -> None:
        await self._db.execute("BEGIN IMMEDIATE")
        cur = await self._db.executemany(
            "INSERT OR IGNORE INTO outbox (meter_id, seq, data, sig, fields) VALUES (?, ?, ?, ?, ?)", rows
        )
        await self._db.execute("COMMIT")
        self.salvaged = cur.rowcount
        self._rows += cur.rowcount

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- writing ---------------------------------------------------------------------------------

    def next_seq(self, meter_id: str) -> int:
        return (self.epoch << COUNTER_BITS) | self._counters.get(meter_id, 0)

    async def _append_locked(self, samples: Sequence[MeterSample], sign: Callable[[Reading], SignedReading]) -> int:
        """Sign each sample with the meter's next sequence number and commit them in one transaction.

        Returns how many were stored. A sample that cannot be encoded (a poller bug) is logged with its
        meter id and skipped; it never takes a sequence number. On error nothing is stored and no
        counter moves, so the same samples can be retried.
        """
        counters: dict[str, int] = {}
        rows = []
        for sample in samples:
            counter = counters.get(sample.meter_id, self._counters.get(sample.meter_id, 0))
            if counter >= 1 << COUNTER_BITS:
                raise OutboxError(f"meter {sample.meter_id}: counter exhausted in epoch {self.epoch}")
            try:
                reading = sample.to_reading((self.epoch << COUNTER_BITS) | counter)
                signed = sign(reading)
            except ReadingFormatError as exc:
                log.error("meter %s: sample cannot be encoded, not stored: %s", sample.meter_id, exc)
                continue
            counters[sample.meter_id] = counter + 1
            rows.append((sample.meter_id, reading.seq, signed.data, signed.signature, entry_prefix(reading)))
        if not rows:
            return 0
        counter_rows = list(counters.items())

        def store(db: sqlite3.Connection) -> None:
            db.executemany("INSERT INTO outbox (meter_id, seq, data, sig, fields) VALUES (?, ?, ?, ?, ?)", rows)
            db.executemany(
                "INSERT INTO counters (meter_id, next_counter) VALUES (?, ?) "
                "ON CONFLICT (meter_id) DO UPDATE SET next_counter = excluded.next_counter",
                counter_rows,
            )

        try:
            await self._transaction(store)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, f"storing {len(rows)} readings") from exc
        self._counters.update(counters)
        self._rows += len(rows)
        return len(rows)

    async def _rollback(self) -> None:
        try:
            await self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite may already have rolled back (e.g. on SQLITE_FULL)

    async def _remove_locked(self, keys: Iterable[tuple[str, int]]) -> int:
        """Delete acknowledged readings by (meter_id, seq); unknown keys are ignored. In small
        transactions; on a full disk the reserve is given back and the WAL checkpointed first, so an
        acknowledgement can always free what it acknowledges."""
        keys = list(keys)
        removed = 0
        for start in range(0, len(keys), _DELETE_CHUNK):
            chunk = keys[start : start + _DELETE_CHUNK]
            try:
                removed += await self._delete_chunk(chunk)
            except OutboxFullError:
                await self._no_space("deleting acknowledged readings")
                removed += await self._delete_chunk(chunk)  # raises again only if nothing at all is left
                await self._checkpoint()
        if removed and self.disk.state != "ok":
            await self._checkpoint()
        if removed:
            self.room_freed.set()
        return removed

    async def _delete_chunk(self, keys: list[tuple[str, int]]) -> int:
        def delete(db: sqlite3.Connection) -> int:
            return db.executemany("DELETE FROM outbox WHERE meter_id = ? AND seq = ?", keys).rowcount

        try:
            removed = await self._transaction(delete)
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, f"removing {len(keys)} acknowledged readings") from exc
        self._rows -= removed
        return removed

    async def _transaction(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """``work`` inside BEGIN IMMEDIATE ... COMMIT (ROLLBACK on any error), run whole in the database
        connection's thread: one hand-over to that thread and one back, instead of one per statement.
        That hand-over (a thread wake-up and an event-loop wake-up) is what a commit mostly costs.
        aiosqlite runs each of its own calls the same way (``Connection._execute``); its public API only
        offers it one statement at a time."""
        db = self._db

        def run() -> _T:
            conn = db._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return result

        result: _T = await db._execute(run)  # type: ignore[no-untyped-call]  # aiosqlite's own hand-over
        return result

    # -- the disk ----------------------------------------------------------------------------------

    async def _checkpoint(self) -> None:
        """Copy the WAL into the database and restart it from its beginning. Not TRUNCATE: the WAL file
        keeps its blocks (up to journal_size_limit), so the next transactions -- a delete, a thinning --
        reuse them and need no new room even when something else has taken the last free block."""
        try:
            # Fetched to the end: aiosqlite's worker thread keeps the last call's cursor alive until the next
            # call has run, and a cursor left mid-result keeps its statement "in progress", which makes the
            # next transaction's COMMIT fail (seen on a full disk: checkpoint, then a store).
            await self._db.execute_fetchall("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:
            log.debug("outbox %s: checkpoint failed: %s", self.path, exc)
        self.disk.hold_wal()

    async def _apply_page_limit(self, *, quiet: bool = False) -> None:
        """Let the database grow only while the WAL keeps its allowance free (gateway.disk)."""
        disk_limit = self.disk.page_limit_for(self._page_size)
        limit = disk_limit if self._page_limit_cap is None else min(disk_limit, self._page_limit_cap)
        current = self.disk.page_limit
        if current is None or abs(limit - current) >= 8:
            try:
                rows = await self._db.execute_fetchall(f"PRAGMA max_page_count={int(limit)}")
            except sqlite3.Error as exc:
                log.debug("outbox %s: cannot set the page limit: %s", self.path, exc)
                return
            self.disk.page_limit = int(rows[0][0]) if rows else limit  # type: ignore[index]
        if self.disk.state not in ("ok", "limited"):
            return  # full / no_space: left by writable_again()
        state = "limited" if disk_limit * self._page_size < self.settings.max_bytes else "ok"
        if state != self.disk.state and not quiet:
            if state == "limited":
                log.warning(
                    "outbox %s: the disk, not max_bytes (%s), now bounds the backlog: at most %s of database "
                    "(%s); the oldest backlog is thinned when it is reached",
                    self.path, mib(self.settings.max_bytes), mib(disk_limit * self._page_size),
                    self.disk.describe(),
                )
            else:
                log.info("outbox %s: the disk has room for max_bytes (%s) again", self.path,
                         mib(self.settings.max_bytes))
        self.disk.state = state

    async def _no_space(self, doing: str) -> None:
        """The filesystem itself is full: give the reserve back and checkpoint, so deletes can run."""
        released = self.disk.release()
        if self.disk.state != "no_space":
            self._log_full(
                "no_space",
                "outbox %s: no space left on the disk while %s: gave back the %s reserve; %s; %d readings pending",
                self.path, doing, mib(released), self.disk.describe(), self._rows,
            )
        self.disk.state = "no_space"
        await self._checkpoint()

    async def make_room(self, attempt: int = 0) -> int:
        """After a write failed for want of room (``attempt`` counts the failures in a row). First a
        checkpoint, which restarts the WAL in blocks it owns: often that is all a commit needed. Then
        -- when the database has no free pages left to reuse -- thinning of the oldest backlog, a fifth
        at a time, in small transactions with checkpoints between, until SQLite has free pages (a thinned
        page is only freed once few rows are left on it). Returns how many readings were thinned."""
        async with self._lock:
            # Our own bound (the page limit) said "full" -- the failed transaction would have taken the
            # database past it -- or the filesystem itself ran out of blocks.
            free, _ = self.disk.free_and_total()
            pages = await self._page_count_locked()
            near_limit = self.disk.page_limit is not None and pages + _TXN_PAGES >= self.disk.page_limit
            if free < 64 * 1024 or not near_limit:
                await self._no_space("storing new readings")
            elif self.disk.state in ("ok", "limited"):
                self._log_full(
                    "full",
                    "outbox %s is full (%s; %d readings pending): thinning the oldest backlog",
                    self.path, self.disk.describe(), self._rows,
                )
                self.disk.state = "full"
            await self._checkpoint()
            wanted = max(8, await self._page_count_locked() // 20)  # free pages worth a few commits
            if attempt == 0 and await self._freelist_locked() >= wanted:
                return 0  # pages to reuse are there: the checkpoint was what the commit needed
            before, removed = self._thinned_total, 0
            while True:
                target = max(0, min(self._rows - 1, int(self._rows * 0.8)))
                step = await self._thin_locked(target, compact=False, why=None, quiet=True)
                removed += step
                await self._checkpoint()
                if step == 0 or await self._freelist_locked() >= wanted:
                    break
            self.disk.page_limit = None  # measure afresh
            await self._apply_page_limit(quiet=True)
            if removed:
                log.warning(
                    "outbox %s: thinned %d old readings to make room (%d thinned in total, %d pending, %d free pages)",
                    self.path, self._thinned_total - before, self._thinned_total, self._rows,
                    await self._freelist_locked(),
                )
            return removed

    def _log_full(self, state: str, message: str, *args: object) -> None:
        """ERROR when the disk state changes, and once a minute at most while it flaps between full and
        writable: a disk that stays full must not flood the log it shares."""
        now = time.monotonic()
        self._full_announced = state != self._full_logged_state or now - self._full_logged_at >= 60.0
        if self._full_announced:
            self._full_logged_at, self._full_logged_state = now, state
            log.error(message, *args)
        else:
            log.debug(message, *args)

    async def _page_count_locked(self) -> int:
        return int((await self._db.execute_fetchall("PRAGMA page_count"))[0][0])  # type: ignore[index]

    async def _freelist_locked(self) -> int:
        return int((await self._db.execute_fetchall("PRAGMA freelist_count"))[0][0])  # type: ignore[index]

    async def writable_again(self) -> None:
        """A write succeeded after :meth:`make_room`: say so, and take the reserve back if there is room."""
        if self.disk.state in ("full", "no_space"):
            self.disk.ensure_reserve()
            self.disk.state = "ok"
            self.disk.page_limit = None
            async with self._lock:
                await self._apply_page_limit(quiet=True)
            # WARNING when the full state was announced at ERROR; a repeat within the minute stays at DEBUG.
            level = logging.WARNING if self._full_announced else logging.DEBUG
            log.log(level, "outbox %s writable again (%s): %d readings pending, %d thinned in total; %s",
                    self.path, self.disk.state, self._rows, self._thinned_total, self.disk.describe())

    # -- reading ---------------------------------------------------------------------------------

    async def _fetch_after_locked(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Oldest first: the rows with id greater than ``after_id``."""
        try:
            rows = await self._db.execute_fetchall(
                "SELECT id, meter_id, seq, data, sig, fields FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "reading the backlog") from exc
        return list(map(OutboxRow._make, rows))

    async def _fetch_ids_locked(self, ids: Sequence[int]) -> list[OutboxRow]:
        """The rows with these ids that still exist (acknowledged or thinned ones are gone)."""
        out: list[OutboxRow] = []
        try:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = await self._db.execute_fetchall(
                    "SELECT id, meter_id, seq, data, sig, fields FROM outbox "
                    f"WHERE id IN ({','.join('?' * len(chunk))}) ORDER BY id",
                    tuple(chunk),
                )
                out.extend(map(OutboxRow._make, rows))
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "reading the backlog") from exc
        return out

    @property
    def pending(self) -> int:
        return self._rows

    @property
    def thinned_total(self) -> int:
        return self._thinned_total

    async def _used_bytes_locked(self) -> int:
        page_size = (await self._db.execute_fetchall("PRAGMA page_size"))[0][0]  # type: ignore[index]
        pages = (await self._db.execute_fetchall("PRAGMA page_count"))[0][0]  # type: ignore[index]
        free = (await self._db.execute_fetchall("PRAGMA freelist_count"))[0][0]  # type: ignore[index]
        return int((pages - free) * page_size)

    async def stats(self) -> OutboxStats:
        return OutboxStats(
            epoch=self.epoch,
            pending=self._rows,
            thinned_total=self._thinned_total,
            used_bytes=await self.used_bytes(),
            capacity_rows=self.settings.capacity_rows,
            salvaged=self.salvaged,
            disk=self.disk.snapshot(),
        )

    async def _latest_seqs_locked(self) -> dict[str, int]:
        """The highest sequence number stored per meter (what thinning must never drop)."""
        rows = await self._db.execute_fetchall("SELECT meter_id, MAX(seq) FROM outbox GROUP BY meter_id")
        return dict(rows)  # type: ignore[arg-type]

    async def new_epoch(self, epoch_path: Path, reason: str) -> int:
        """Continue in a fresh epoch (counters restart at 0 under a higher high part). Used when the
        backend reports ``seq_conflict`` for the current epoch: numbers this box believes unused were
        used before (its epoch file and outbox were both lost), so leave that range for good."""
        async with self._lock:
            epoch = max(self.epoch, read_epoch(epoch_path)) + 1
            write_epoch(epoch_path, epoch)
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                await self._db.execute("UPDATE meta SET value = ? WHERE key = 'epoch'", (epoch,))
                await self._db.execute("DELETE FROM counters")
                await self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                await self._rollback()
                raise _translate(exc, self.path, "starting a new epoch") from exc
            self.epoch = epoch
            self._counters.clear()
        log.warning("outbox %s: sequence epoch %d started (%s)", self.path, epoch, reason)
        return epoch

    # -- public, serialised ------------------------------------------------------------------------

    async def append(self, samples: Sequence[MeterSample], sign: Callable[[Reading], SignedReading]) -> int:
        """Sign each sample with the meter's next sequence number and commit them in one transaction.

        Returns how many were stored. A sample that cannot be encoded (a poller bug) is logged with its
        meter id and skipped; it never takes a sequence number. On error nothing is stored and no
        counter moves, so the same samples can be retried."""
        async with self._lock:
            await self._apply_page_limit()
            return await self._append_locked(samples, sign)

    async def remove(self, keys: Iterable[tuple[str, int]]) -> int:
        """Delete acknowledged readings by (meter_id, seq); unknown keys are ignored."""
        async with self._lock:
            return await self._remove_locked(keys)

    async def fetch_after(self, after_id: int, limit: int) -> list[OutboxRow]:
        """Oldest first: the rows with id greater than ``after_id``."""
        async with self._lock:
            return await self._fetch_after_locked(after_id, limit)

    async def fetch_ids(self, ids: Sequence[int]) -> list[OutboxRow]:
        """The rows with these ids that still exist (acknowledged or thinned ones are gone)."""
        async with self._lock:
            return await self._fetch_ids_locked(ids)

    async def oldest_timestamp_ms(self) -> int | None:
        """When the oldest reading still waiting for the backend was taken (None: nothing waits)."""
        async with self._lock:
            try:
                rows = await self._db.execute_fetchall("SELECT data FROM outbox ORDER BY id LIMIT 1")
            except sqlite3.Error as exc:
                raise _translate(exc, self.path, "reading the backlog") from exc
        for (data,) in rows:
            try:
                return decode(bytes(data)).timestamp_ms
            except ReadingFormatError:
                return None
        return None

    async def used_bytes(self) -> int:
        async with self._lock:
            return await self._used_bytes_locked()

    async def latest_seqs(self) -> dict[str, int]:
        """The highest sequence number stored per meter (what thinning must never drop)."""
        async with self._lock:
            return await self._latest_seqs_locked()

    async def thin(self, target_rows: int | None = None) -> int:
        """Thin the oldest backlog until at most ``target_rows`` remain (default 80 % of capacity).

        Each pass looks at the oldest rows and drops every other reading of each meter there, keeping
        each meter's first and latest reading in the whole outbox. Repeated passes make old backlog
        exponentially sparser while recent readings stay dense. Returns how many were dropped."""
        async with self._lock:
            return await self._thin_locked(target_rows)

    # -- bounding --------------------------------------------------------------------------------

    def over_capacity(self) -> bool:
        return self._rows > self.settings.capacity_rows

    async def _thin_locked(
        self, target_rows: int | None = None, *, compact: bool = True, why: str | None = None, quiet: bool = False
    ) -> int:
        """Thin the oldest backlog until at most ``target_rows`` remain (default 80 % of capacity).

        Each pass looks at the oldest rows and drops every other reading of each meter there, keeping
        each meter's first and latest reading in the whole outbox. Repeated passes make old backlog
        exponentially sparser while recent readings stay dense. Returns how many were dropped.
        """
        target = int(self.settings.capacity_rows * 0.8) if target_rows is None else max(0, target_rows)
        removed_total = 0
        try:
            while self._rows > target:
                excess = self._rows - target
                window = min(self._rows, max(2 * excess + 64, 1024))
                oldest = await self._db.execute_fetchall(
                    "SELECT id, meter_id, seq FROM outbox ORDER BY id LIMIT ?", (window,)
                )
                bounds = {
                    m: (lo, hi)
                    for m, lo, hi in await self._db.execute_fetchall(
                        "SELECT meter_id, MIN(seq), MAX(seq) FROM outbox GROUP BY meter_id"
                    )
                }
                by_meter: dict[str, list[tuple[int, int]]] = {}
                for row_id, meter, seq in oldest:
                    by_meter.setdefault(meter, []).append((seq, row_id))
                doomed: list[tuple[int]] = []
                for meter, rows in by_meter.items():
                    rows.sort()
                    lo, hi = bounds[meter]
                    for i, (seq, row_id) in enumerate(rows):
                        if i % 2 == 1 and seq not in (lo, hi):
                            doomed.append((row_id,))
                        if len(doomed) >= excess:
                            break
                    if len(doomed) >= excess:
                        break
                if not doomed:
                    break  # only first/latest readings left: nothing may go
                # Small transactions (each one's WAL pages fit the allowance), checkpointed between
                # while the disk is short, so thinning itself never needs more room than it frees.
                for start in range(0, len(doomed), _DELETE_CHUNK):
                    chunk = doomed[start : start + _DELETE_CHUNK]
                    await self._db.execute("BEGIN IMMEDIATE")
                    try:
                        cur = await self._db.executemany("DELETE FROM outbox WHERE id = ?", chunk)
                        await self._db.execute(
                            "UPDATE meta SET value = value + ? WHERE key = 'thinned_total'", (cur.rowcount,)
                        )
                        await self._db.execute("COMMIT")
                    except BaseException:
                        await self._rollback()
                        raise
                    self._rows -= cur.rowcount
                    self._thinned_total += cur.rowcount
                    removed_total += cur.rowcount
                    if self.disk.state != "ok":
                        await self._checkpoint()
        except sqlite3.Error as exc:
            raise _translate(exc, self.path, "thinning the backlog") from exc
        if compact and removed_total and await self._used_bytes_locked() > self.settings.max_bytes:
            # Thinning leaves pages half empty, and rows only ever append at the end of the table,
            # so that slack is not reused: compact. This runs only after an outage long enough to
            # fill the outbox, at most once per 20 % of capacity written.
            free, _ = self.disk.free_and_total()
            if free > 2 * self.disk.snapshot().database_bytes + self.settings.wal_allowance_bytes:
                try:
                    await self._db.execute_fetchall("VACUUM")
                except sqlite3.Error as exc:  # e.g. no room for the copy VACUUM makes: keep going
                    log.warning("outbox %s: could not compact after thinning: %s", self.path, exc)
        if removed_total and not quiet:
            log.warning(
                "outbox %s %s: thinned %d old readings (%d in total); %d pending",
                self.path,
                why or f"over its {self.settings.max_bytes}-byte bound",
                removed_total,
                self._thinned_total,
                self._rows,
            )
        return removed_total

    async def set_page_limit(self, pages: int) -> None:
        """Cap the file at ``pages`` pages (SQLite then reports 'full'); for tests of the disk-full path.
        Kept as an upper bound on the page limit the disk allows."""
        self._page_limit_cap = int(pages)
        self.disk.page_limit = None
        async with self._lock:
            await self._apply_page_limit()

    async def page_count(self) -> int:
        return int((await self._db.execute_fetchall("PRAGMA page_count"))[0][0])  # type: ignore[index]


async def _check_file(path: Path) -> str | None:
    """None if the file is a healthy database, else what is wrong with it."""
    try:
        async with aiosqlite.connect(path) as db:
            result = await db.execute_fetchall("PRAGMA quick_check")
    except sqlite3.DatabaseError as exc:
        return str(exc)
    messages = [r[0] for r in result]
    return None if messages == ["ok"] else "; ".join(messages[:3])


async def _salvage(path: Path) -> list[tuple[str, int, bytes, bytes, bytes]]:
    """Every outbox row of a damaged database that can still be read and decodes as a reading.

    Rows are read by rowid in small ranges, then one by one inside a range that fails, so a damaged
    page costs only the rows on it."""
    out: list[tuple[str, int, bytes, bytes, bytes]] = []
    query = "SELECT meter_id, seq, data, sig FROM outbox WHERE id BETWEEN ? AND ?"

    def keep(rows: Iterable[Any]) -> None:
        for meter_id, seq, data, sig in rows:
            try:
                reading = decode(bytes(data))
            except (ReadingFormatError, TypeError):
                continue
            if reading.meter_id == meter_id and reading.seq == seq and len(bytes(sig)) == 64:
                out.append((meter_id, seq, bytes(data), bytes(sig), entry_prefix(reading)))

    try:
        async with aiosqlite.connect(f"file:{path}?mode=ro", uri=True) as db:
            top = (await db.execute_fetchall("SELECT max(id) FROM outbox"))[0][0] or 0  # type: ignore[index]
            for start in range(1, top + 1, 256):
                try:
                    keep(await db.execute_fetchall(query, (start, start + 255)))
                except sqlite3.DatabaseError:
                    for one in range(start, min(start + 256, top + 1)):
                        try:
                            keep(await db.execute_fetchall(query, (one, one)))
                        except sqlite3.DatabaseError:
                            continue
    except sqlite3.DatabaseError as exc:
        log.error("outbox: nothing salvageable from %s (%s)", path, exc)
    return out
