"""Certificates (design 6.0): the meter owner requests one for settled generation; governance (an
operator wallet) validates or revokes with a reason; the holder retires or transfers it.

A request is built from the chain, not from D6 (which follows it): the certificate's index is the
meter's mark's ``next_index`` and the range starts at its ``certified_up_to_wh``, and ``to_wh`` is checked
against the meter's settled generation. The index is then held for the prepared transaction
(backend/storage/certificate_requests.py) until it lands, is refused on chain, or lapses; a second request
for the meter meanwhile — which would name the same certificate and fail on chain after its wallet signed
— is refused at once with 409 ``certificate_request_pending``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from backend.api.context import ApiContext
from backend.api.deps import Ctx, Operator, Wallet
from backend.api.errors import ApiError
from backend.api.pagination import Page
from backend.api.routes.common import MeterId, Paging, page_of, pubkey
from backend.api.routes.common import meter_id as meter_id_of
from backend.api.transactions import ISSUE_ACTION, PreparedTransaction, prepare, prepared_digest
from backend.api.views import certificate_view, event_view
from backend.storage import certificate_requests as requests
from backend.storage import certificates as d6
from backend.storage import events, meters
from programs.certificates import client as certificates
from programs.client.chain import ChainError
from programs.registry import client as registry

router = APIRouter(prefix="/certificates", tags=["certificates"])

# The request's index outlives its intent by this much: the intent is checked, then the submission holds the
# index for as long as the transaction may still land (backend.api.transactions).
RESERVE_MARGIN_S = 5

STATES = {"PENDING", "VALID", "RETIRED", "REVOKED", "EXPIRED"}


class CertificateRequest(BaseModel):
    meter_id: MeterId
    to_wh: int = Field(..., gt=0, lt=2**63, description="certify settled generation up to this position (Wh)")


class Revocation(BaseModel):
    reason: int = Field(..., ge=1, le=65535, description="reason code (docs/programs/certificates.md)")


class Transfer(BaseModel):
    to: str = Field(..., max_length=64, description="the new holder's wallet")


async def _certificate(ctx: ApiContext, address: str) -> d6.CertificateRow:
    pubkey(address, "certificate")
    cert = await d6.get_certificate(ctx.storage, address)
    if cert is None:
        raise ApiError(404, "not_found", f"no certificate {address}")
    return cert


@router.post("", response_model=PreparedTransaction, status_code=201,
             summary="request a certificate for a meter's settled generation (meter owner)")
async def request(body: CertificateRequest, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    meter = await meters.get_meter(ctx.storage, body.meter_id)
    if meter is None:
        raise ApiError(404, "not_found", f"meter {body.meter_id} is not registered")
    if meter.owner_wallet != wallet:
        raise ApiError(403, "NotMeterOwner", "only the meter's owner requests its certificates")
    a = ctx.addresses
    meter_pda = registry.meter_address(a.registry, body.meter_id)[0]
    mark_pda = certificates.mark_address(a.certificates, meter_pda)[0]
    try:
        mark_account, on_chain = await asyncio.gather(ctx.chain.get_account(mark_pda),
                                                      registry.fetch_meter(ctx.chain, a.registry, body.meter_id))
    except ChainError as exc:
        raise ApiError(503, "chain_unavailable", f"cannot read the meter's certificate mark: {exc}") from None
    mark = certificates.CertMark.decode(bytes(mark_account.data)) if mark_account is not None else None
    index, certified = (mark.next_index, mark.certified_up_to_wh) if mark is not None else (0, 0)
    settled = max(on_chain.generation_since_baseline_wh, 0) if on_chain is not None and on_chain.has_baseline else 0
    if body.to_wh <= certified:
        raise ApiError(409, "AlreadyCertified", f"meter {body.meter_id} is certified up to {certified} Wh already",
                       certified_up_to_wh=certified)
    if body.to_wh > settled:
        raise ApiError(422, "ExceedsSettledGeneration",
                       f"meter {body.meter_id} has settled {settled} Wh above its baseline", settled_wh=settled)
    ix = certificates.issue(a.certificates, pubkey(wallet), meter_pda, index, body.to_wh)
    address = str(certificates.certificate_address(a.certificates, meter_pda, index)[0])
    prepared = await prepare(ctx, wallet, ISSUE_ACTION, [ix], {"certificate": address, "meter_id": body.meter_id,
                                                               "index": index, "from_wh": certified,
                                                               "to_wh": body.to_wh})
    expires_ms = (prepared.expires_at + RESERVE_MARGIN_S) * 1000
    holder = await requests.reserve(ctx.storage, body.meter_id, index, body.to_wh, prepared_digest(prepared),
                                    expires_ms, next_index=index)
    if holder is not None:
        raise ApiError(409, "certificate_request_pending",
                       f"a certificate request for meter {body.meter_id} is being signed or sent; submit it, or "
                       "ask again once it has landed or expired",
                       index=holder.cert_index, to_wh=holder.to_wh, expires_at=holder.expires_ms // 1000)
    return prepared


@router.post("/{address}/validate", response_model=PreparedTransaction, summary="governance: validate")
async def validate(address: str, wallet: Operator, ctx: Ctx) -> PreparedTransaction:
    cert = await _certificate(ctx, address)
    if cert.status != "PENDING":
        raise ApiError(422, "InvalidState", f"the certificate is {cert.status}")
    ix = certificates.validate(ctx.addresses.certificates, pubkey(wallet), pubkey(address, "certificate"))
    return await prepare(ctx, wallet, "certificates.validate", [ix], {"certificate": address})


@router.post("/{address}/revoke", response_model=PreparedTransaction, summary="governance: revoke, with a reason")
async def revoke(address: str, body: Revocation, wallet: Operator, ctx: Ctx) -> PreparedTransaction:
    await _certificate(ctx, address)
    ix = certificates.revoke(ctx.addresses.certificates, pubkey(wallet), pubkey(address, "certificate"), body.reason)
    return await prepare(ctx, wallet, "certificates.revoke", [ix], {"certificate": address, "reason": body.reason})


@router.post("/{address}/retire", response_model=PreparedTransaction, summary="holder: retire (claim) it")
async def retire(address: str, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    cert = await _certificate(ctx, address)
    if cert.holder != wallet:
        raise ApiError(403, "NotCertificateOwner", "only the holder retires a certificate")
    ix = certificates.retire(ctx.addresses.certificates, pubkey(wallet), pubkey(address, "certificate"))
    return await prepare(ctx, wallet, "certificates.retire", [ix], {"certificate": address})


@router.post("/{address}/transfer", response_model=PreparedTransaction, summary="holder: transfer it")
async def transfer(address: str, body: Transfer, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    cert = await _certificate(ctx, address)
    if cert.holder != wallet:
        raise ApiError(403, "NotCertificateOwner", "only the holder transfers a certificate")
    ix = certificates.transfer(ctx.addresses.certificates, pubkey(wallet), pubkey(address, "certificate"),
                               pubkey(body.to))
    return await prepare(ctx, wallet, "certificates.transfer", [ix], {"certificate": address, "to": body.to})


@router.get("", response_model=Page[dict[str, Any]], summary="certificates, newest first")
async def list_certificates(ctx: Ctx, paging: Paging, holder: str | None = Query(None, max_length=64),
                            meter_id: str | None = Query(None, max_length=16),
                            state: str | None = Query(None)) -> Page[dict[str, Any]]:
    if state is not None and state.upper() not in STATES:
        raise ApiError(400, "bad_state", f"states are {', '.join(sorted(STATES))}")
    if holder is not None:
        pubkey(holder)
    if meter_id is not None:
        meter_id_of(meter_id)
    before = paging.key(int, str)
    rows = await d6.recent_certificates(ctx.storage, holder=holder, meter_id=meter_id,
                                        status=state.upper() if state else None, limit=paging.limit,
                                        before=(before[0], before[1]) if before else None)
    return page_of([certificate_view(c) for c in rows], paging.limit, ["issued_at", "address"])


@router.get("/{address}", response_model=dict[str, Any], summary="one certificate with its state history")
async def get_certificate(address: str, ctx: Ctx) -> dict[str, Any]:
    cert = await _certificate(ctx, address)
    history = await events.events_after(ctx.storage, 0, subject=address, limit=1000)
    return {**certificate_view(cert), "history": [event_view(e) for e in history]}
