"""Certificates (design 6.0): the meter owner requests one for settled generation; governance (an
operator wallet) validates or revokes with a reason; the holder retires or transfers it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from backend.api.context import ApiContext
from backend.api.deps import Ctx, Operator, Wallet
from backend.api.errors import ApiError
from backend.api.pagination import Page
from backend.api.routes.common import Paging, page_of, pubkey
from backend.api.transactions import PreparedTransaction, prepare
from backend.api.views import certificate_view, event_view
from backend.storage import certificates as d6
from backend.storage import events, meters
from programs.certificates import client as certificates
from programs.registry import client as registry

router = APIRouter(prefix="/certificates", tags=["certificates"])

STATES = {"PENDING", "VALID", "RETIRED", "REVOKED", "EXPIRED"}


class CertificateRequest(BaseModel):
    meter_id: str = Field(..., max_length=16)
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
    index = await d6.count_for_meter(ctx.storage, body.meter_id)  # numbered 0, 1, … per meter
    ix = certificates.issue(a.certificates, pubkey(wallet), meter_pda, index, body.to_wh)
    address = str(certificates.certificate_address(a.certificates, meter_pda, index)[0])
    return await prepare(ctx, wallet, "certificates.issue", [ix],
                         {"certificate": address, "meter_id": body.meter_id, "index": index, "to_wh": body.to_wh})


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
