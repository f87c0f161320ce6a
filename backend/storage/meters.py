"""D1 meter registry: the registry program's meters as the indexer saw them.

``meters``: meter_id (primary key), pda_address (canonical registry PDA), owner_wallet, meter_key (the
gateway's Ed25519 key, 32 bytes), status (PENDING | ACTIVE | SUSPENDED | DECOMMISSIONED), registered_at
(chain unix seconds), settled_seq and settled_mark_wh (the last settlement: its reading's seq and the
meter's settled mark, Wh), minted_base_units (GRID minted for this meter, all settlements), updated_signature,
updated_slot, updated_ms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms

__all__ = [
    "METER_STATUSES",
    "MeterRow",
    "get_meter",
    "list_meters",
    "record_key",
    "record_owner",
    "record_registered",
    "record_settlement",
    "record_status",
]

METER_STATUSES = ("PENDING", "ACTIVE", "SUSPENDED", "DECOMMISSIONED")
_COLUMNS = ("meter_id, pda_address, owner_wallet, meter_key, status, registered_at, settled_seq, settled_mark_wh, "
            "minted_base_units, updated_signature, updated_slot, updated_ms")


@dataclass(frozen=True)
class MeterRow:
    meter_id: str
    pda_address: str
    owner_wallet: str
    meter_key: bytes
    status: str
    registered_at: int | None
    settled_seq: int | None
    settled_mark_wh: int | None
    minted_base_units: int
    updated_signature: str | None
    updated_slot: int | None
    updated_ms: int


def _row(r: Sequence[Any]) -> MeterRow:
    return MeterRow(r[0], r[1], r[2], bytes(r[3]), *r[4:])


async def record_registered(db: Sql, meter_id: str, pda_address: str, owner: str, meter_key: bytes, *,
                            registered_at: int | None, signature: str, slot: int, status: str = "PENDING") -> None:
    await db.execute(
        "INSERT INTO meters (meter_id, pda_address, owner_wallet, meter_key, status, registered_at, "
        "updated_signature, updated_slot, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
        "ON CONFLICT (meter_id) DO UPDATE SET pda_address = excluded.pda_address, "
        "owner_wallet = excluded.owner_wallet, "
        "meter_key = excluded.meter_key, status = excluded.status, registered_at = excluded.registered_at, "
        "updated_signature = excluded.updated_signature, updated_slot = excluded.updated_slot, "
        "updated_ms = excluded.updated_ms",
        meter_id, pda_address, owner, meter_key, status, registered_at, signature, slot, now_ms(),
    )


async def _update(db: Sql, meter_id: str, assignments: str, signature: str, slot: int, *args: Any) -> None:
    await db.execute(
        f"UPDATE meters SET {assignments}, updated_signature = $2, updated_slot = $3, updated_ms = $4 "
        "WHERE meter_id = $1",
        meter_id, signature, slot, now_ms(), *args,
    )


async def record_status(db: Sql, meter_id: str, status: str, *, signature: str, slot: int) -> None:
    if status not in METER_STATUSES:
        raise ValueError(f"meter status {status!r} is not one of {METER_STATUSES}")
    await _update(db, meter_id, "status = $5", signature, slot, status)


async def record_key(db: Sql, meter_id: str, meter_key: bytes, *, signature: str, slot: int) -> None:
    await _update(db, meter_id, "meter_key = $5", signature, slot, meter_key)


async def record_owner(db: Sql, meter_id: str, owner: str, meter_key: bytes, *, signature: str, slot: int) -> None:
    """ReassignMeter: new owner and key; the meter is Pending again."""
    await _update(db, meter_id, "owner_wallet = $5, meter_key = $6, status = 'PENDING'", signature, slot,
                  owner, meter_key)


async def record_settlement(db: Sql, meter_id: str, *, seq: int, mark_wh: int, minted: int, signature: str,
                            slot: int) -> None:
    await _update(db, meter_id, "settled_seq = $5, settled_mark_wh = $6, minted_base_units = minted_base_units + $7",
                  signature, slot, seq, mark_wh, minted)


async def get_meter(db: Sql, meter_id: str) -> MeterRow | None:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM meters WHERE meter_id = $1", meter_id)
    return _row(rows[0]) if rows else None


async def list_meters(db: Sql, *, owner: str | None = None, status: str | None = None, after: str | None = None,
                      limit: int = 100) -> list[MeterRow]:
    """Meters by id, optionally one owner's or one status; ``after``: the previous page's last meter id."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM meters WHERE meter_id > $1 AND (CAST($2 AS TEXT) IS NULL OR owner_wallet = $2) "
        "AND (CAST($3 AS TEXT) IS NULL OR status = $3) ORDER BY meter_id LIMIT $4",
        after or "", owner, status, limit,
    )
    return [_row(r) for r in rows]
