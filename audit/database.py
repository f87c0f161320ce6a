"""Reading the backend's database, read only, with plain SQL: what it claims to hold.

The audit trusts nothing here; it only compares. Two tables are read (docs/backend.md describes them):

- ``readings`` (D2): ``meter_id``, ``seq``, ``data`` (the 60 signed bytes as received), ``signature``
  (the gateway's 64-byte Ed25519 signature), ``gateway_id``;
- ``payments`` (D7): ``signature`` (the transaction), ``kind`` (``ISSUE``, ``REDEEM``, ``CONSUME``),
  ``asset`` (``THBC`` or ``GRID``), ``amount`` (base units).

``sqlite:///path`` (the embedded default) is opened read-only with the standard library;
``postgresql://…`` needs asyncpg (the backend extra), imported only then.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DatabaseReadError", "PaymentRow", "StoredReading", "payment_rows", "stored_readings"]


class DatabaseReadError(Exception):
    """The database could not be read; the message names it (never its password)."""


@dataclass(frozen=True)
class StoredReading:
    gateway_id: str
    data: bytes
    signature: bytes


@dataclass(frozen=True)
class PaymentRow:
    signature: str
    kind: str
    asset: str
    amount: int


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://…@{rest.split('@', 1)[1]}"
    return url


_CHUNK = 500


def _query(url: str, sql_sqlite: str, sql_postgres: str, args: Sequence[Any], *,
           postgres_args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite://"):])
        if not path.exists():  # sqlite would create an empty database; a missing one is a mistake
            raise DatabaseReadError(f"{url}: no such database file")
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as conn:
                return [tuple(r) for r in conn.execute(sql_sqlite, list(args)).fetchall()]
        except sqlite3.Error as exc:
            raise DatabaseReadError(f"{url}: {exc}") from exc
    if url.startswith(("postgresql://", "postgres://")):
        return asyncio.run(_postgres(url, sql_postgres, args if postgres_args is None else postgres_args))
    raise DatabaseReadError(f"database URL {_redact(url)!r} must start with postgresql:// or sqlite:///")


async def _postgres(url: str, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    try:
        import asyncpg
    except ImportError as exc:
        raise DatabaseReadError("reading PostgreSQL needs asyncpg: pip install 'gridtokenx-edge[backend]'") from exc
    try:
        conn = await asyncpg.connect(url)
    except (OSError, asyncpg.PostgresError) as exc:
        raise DatabaseReadError(f"{_redact(url)}: {exc}") from exc
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    except asyncpg.PostgresError as exc:
        raise DatabaseReadError(f"{_redact(url)}: {exc}") from exc
    finally:
        await conn.close()


def stored_readings(url: str, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], list[StoredReading]]:
    """Every stored reading with one of these (meter id, seq), from any gateway."""
    wanted = sorted(set(keys))
    out: dict[tuple[str, int], list[StoredReading]] = {k: [] for k in wanted}
    by_meter: dict[str, list[int]] = {}
    for meter, seq in wanted:
        by_meter.setdefault(meter, []).append(seq)
    # Per meter, the settled sequence numbers in chunks: a few round trips, not one per reading.
    for meter, seqs in by_meter.items():
        for at in range(0, len(seqs), _CHUNK):
            chunk = seqs[at:at + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            rows = _query(url,
                          "SELECT gateway_id, seq, data, signature FROM readings WHERE meter_id = ? "
                          f"AND seq IN ({marks})",
                          "SELECT gateway_id, seq, data, signature FROM readings WHERE meter_id = $1 "
                          "AND seq = ANY($2::bigint[])",
                          [meter, *chunk], postgres_args=[meter, chunk])
            for gateway_id, seq, data, signature in rows:
                out[(meter, int(seq))].append(StoredReading(str(gateway_id), bytes(data), bytes(signature)))
    return out


def payment_rows(url: str) -> list[PaymentRow]:
    """D7: every payment row the backend recorded."""
    rows = _query(url, "SELECT signature, kind, asset, amount FROM payments",
                  "SELECT signature, kind, asset, amount FROM payments", [])
    return [PaymentRow(str(s), str(k), str(a), int(n)) for s, k, a, n in rows]
