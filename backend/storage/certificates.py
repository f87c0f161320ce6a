"""D6 certificate registry: the certificates program's energy attribute certificates.

``certificates``: address (certificate PDA, primary key), meter_address (registry meter PDA), meter_id,
cert_index (per meter), holder, from_wh / to_wh (settled generation above the meter's baseline, Wh),
status (PENDING | VALID | RETIRED | REVOKED | EXPIRED), revoke_reason, issued_at / expires_at /
validated_at / closed_at (chain unix seconds), issued_signature, updated_signature, updated_slot,
updated_ms. Their state history is in ``chain_events`` (subject = the certificate address).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend.storage.sql import Sql, now_ms

__all__ = [
    "CERTIFICATE_STATUSES",
    "CertificateRow",
    "certificate_totals",
    "expired_open_certificates",
    "get_certificate",
    "list_certificates",
    "recent_certificates",
    "record_certificate",
    "record_status",
]

CERTIFICATE_STATUSES = ("PENDING", "VALID", "RETIRED", "REVOKED", "EXPIRED")
_COLUMNS = ("address, meter_address, meter_id, cert_index, holder, from_wh, to_wh, status, revoke_reason, "
            "issued_at, expires_at, validated_at, closed_at, issued_signature, updated_signature, updated_slot, "
            "updated_ms")


@dataclass(frozen=True)
class CertificateRow:
    address: str
    meter_address: str
    meter_id: str | None
    cert_index: int
    holder: str
    from_wh: int
    to_wh: int
    status: str
    revoke_reason: int | None
    issued_at: int
    expires_at: int
    validated_at: int | None
    closed_at: int | None
    issued_signature: str
    updated_signature: str
    updated_slot: int
    updated_ms: int

    @property
    def wh(self) -> int:
        return self.to_wh - self.from_wh


def _row(r: Sequence[Any]) -> CertificateRow:
    return CertificateRow(*r)


async def record_certificate(db: Sql, row: CertificateRow) -> None:
    """Insert a certificate, or bring an existing one up to this (newer) state."""
    await db.execute(
        f"INSERT INTO certificates ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
        "$14, $15, $16, $17) ON CONFLICT (address) DO UPDATE SET holder = excluded.holder, status = excluded.status, "
        "revoke_reason = excluded.revoke_reason, validated_at = excluded.validated_at, "
        "closed_at = excluded.closed_at, meter_id = COALESCE(excluded.meter_id, certificates.meter_id), "
        "updated_signature = excluded.updated_signature, updated_slot = excluded.updated_slot, "
        "updated_ms = excluded.updated_ms WHERE certificates.updated_slot <= excluded.updated_slot",
        row.address, row.meter_address, row.meter_id, row.cert_index, row.holder, row.from_wh, row.to_wh, row.status,
        row.revoke_reason, row.issued_at, row.expires_at, row.validated_at, row.closed_at, row.issued_signature,
        row.updated_signature, row.updated_slot, now_ms(),
    )


async def record_status(db: Sql, address: str, status: str, *, signature: str, slot: int,
                        holder: str | None = None, revoke_reason: int | None = None,
                        validated_at: int | None = None, closed_at: int | None = None) -> None:
    if status not in CERTIFICATE_STATUSES:
        raise ValueError(f"certificate status {status!r} is not one of {CERTIFICATE_STATUSES}")
    await db.execute(
        "UPDATE certificates SET status = $2, holder = COALESCE($3, holder), "
        "revoke_reason = COALESCE($4, revoke_reason), validated_at = COALESCE($5, validated_at), "
        "closed_at = COALESCE($6, closed_at), updated_signature = $7, updated_slot = $8, updated_ms = $9 "
        "WHERE address = $1",
        address, status, holder, revoke_reason, validated_at, closed_at, signature, slot, now_ms(),
    )


async def get_certificate(db: Sql, address: str) -> CertificateRow | None:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM certificates WHERE address = $1", address)
    return _row(rows[0]) if rows else None


async def list_certificates(db: Sql, *, holder: str | None = None, meter_id: str | None = None,
                            status: str | None = None, after: str | None = None,
                            limit: int = 100) -> list[CertificateRow]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM certificates WHERE address > $1 AND (CAST($2 AS TEXT) IS NULL OR holder = $2) "
        "AND (CAST($3 AS TEXT) IS NULL OR meter_id = $3) AND (CAST($4 AS TEXT) IS NULL OR status = $4) "
        "ORDER BY address LIMIT $5",
        after or "", holder, meter_id, status, limit,
    )
    return [_row(r) for r in rows]


async def recent_certificates(db: Sql, *, holder: str | None = None, meter_id: str | None = None,
                              status: str | None = None, before: tuple[int, str] | None = None,
                              limit: int = 100) -> list[CertificateRow]:
    """Certificates newest first; ``before``: (issued_at, address) of the previous page's last row."""
    issued, address = before if before is not None else (2**62, "")
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM certificates WHERE (issued_at < $1 OR (issued_at = $1 AND address < $2) "
        "OR CAST($6 AS BOOLEAN)) AND (CAST($3 AS TEXT) IS NULL OR holder = $3) "
        "AND (CAST($4 AS TEXT) IS NULL OR meter_id = $4) AND (CAST($5 AS TEXT) IS NULL OR status = $5) "
        "ORDER BY issued_at DESC, address DESC LIMIT $7",
        issued, address, holder, meter_id, status, before is None, limit,
    )
    return [_row(r) for r in rows]


async def expired_open_certificates(db: Sql, now: int, *, limit: int = 100) -> list[CertificateRow]:
    """PENDING or VALID certificates whose validity has ended (``expires_at <= now``): the crank's work."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM certificates WHERE status IN ('PENDING', 'VALID') AND expires_at <= $1 "
        "ORDER BY expires_at, address LIMIT $2",
        now, limit,
    )
    return [_row(r) for r in rows]


async def certificate_totals(db: Sql, *, since: int | None = None, until: int | None = None
                             ) -> dict[str, dict[str, int]]:
    """Per meter id: Wh issued (issued_at in [since, until)) and Wh retired (closed_at in range)."""
    out: dict[str, dict[str, int]] = {}
    for meter_id, status, issued_at, closed_at, wh in await db.fetch(
        "SELECT COALESCE(meter_id, meter_address), status, issued_at, closed_at, to_wh - from_wh FROM certificates"
    ):
        t = out.setdefault(meter_id, {"issued": 0, "issued_wh": 0, "retired": 0, "retired_wh": 0})
        if (since is None or issued_at >= since) and (until is None or issued_at < until):
            t["issued"] += 1
            t["issued_wh"] += int(wh)
        if status == "RETIRED" and closed_at is not None and (since is None or closed_at >= since) and (
                until is None or closed_at < until):
            t["retired"] += 1
            t["retired_wh"] += int(wh)
    return out
