"""The api role's certificate requests in flight: which certificate index a prepared, not yet landed
Issue transaction holds (``api_certificate_requests``, schema version 6). Request plumbing, not a data
store of the design; only the api touches it.

A certificate's address is the PDA ``["cert", meter, index]`` and the program accepts only the meter's
next index (its mark's ``next_index``), so two Issue transactions built from the same mark would name
the same certificate and the second would fail on chain after its wallet signed it. One row per meter
holds the index a prepared transaction uses until it lands (the mark moves past it), its submission is
refused by the chain, or it lapses (``expires_ms``: the intent's validity, then how long a submitted
transaction may still land). A second request meanwhile is refused before anything is signed.

Columns: meter_id (primary key), cert_index, to_wh, digest (SHA-256 of the prepared message, hex, as the
intent names it), expires_ms.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.storage.sql import Sql, now_ms

__all__ = ["PendingRequest", "hold", "pending", "release", "reserve"]


@dataclass(frozen=True)
class PendingRequest:
    meter_id: str
    cert_index: int
    to_wh: int
    digest: str
    expires_ms: int


async def reserve(db: Sql, meter_id: str, cert_index: int, to_wh: int, digest: str, expires_ms: int, *,
                  next_index: int) -> PendingRequest | None:
    """Take ``cert_index`` of ``meter_id`` for the prepared message ``digest``. None when done; else the
    request that holds the meter: unexpired, and not yet landed (its index is not below the chain's
    ``next_index``). Atomic on both dialects (one upsert), so of two requests at once one wins."""
    while True:
        rows = await db.fetch(
            "INSERT INTO api_certificate_requests (meter_id, cert_index, to_wh, digest, expires_ms) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (meter_id) DO UPDATE SET cert_index = excluded.cert_index, "
            "to_wh = excluded.to_wh, digest = excluded.digest, expires_ms = excluded.expires_ms "
            "WHERE api_certificate_requests.expires_ms <= $6 OR api_certificate_requests.cert_index < $7 "
            "RETURNING digest", meter_id, cert_index, to_wh, digest, expires_ms, now_ms(), next_index)
        if rows and rows[0][0] == digest:
            return None
        holder = await pending(db, meter_id)
        if holder is not None:
            return holder
        # released between the two statements: the meter is free again, take it


async def pending(db: Sql, meter_id: str) -> PendingRequest | None:
    rows = await db.fetch("SELECT meter_id, cert_index, to_wh, digest, expires_ms FROM api_certificate_requests "
                          "WHERE meter_id = $1", meter_id)
    if not rows:
        return None
    m, index, to_wh, digest, expires = rows[0]
    return PendingRequest(str(m), int(index), int(to_wh), str(digest), int(expires))


async def hold(db: Sql, digest: str, until_ms: int) -> bool:
    """Keep the request of ``digest`` while its transaction is in flight (it may land until ``until_ms``)."""
    rows = await db.fetch("UPDATE api_certificate_requests SET expires_ms = $2 WHERE digest = $1 AND expires_ms < $2 "
                          "RETURNING meter_id", digest, until_ms)
    return bool(rows)


async def release(db: Sql, digest: str) -> None:
    """The transaction of ``digest`` ran (landed or refused on chain): its index is no longer held."""
    await db.execute("DELETE FROM api_certificate_requests WHERE digest = $1", digest)
