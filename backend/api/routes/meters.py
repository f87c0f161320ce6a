"""Meters: a prosumer registers a meter id with its gateway's public key (from ``gateway keygen``); it
stays PENDING until an operator activates it (operator wallets only)."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator

from backend.api.deps import Ctx, Operator, Wallet
from backend.api.errors import ApiError
from backend.api.pagination import Page
from backend.api.routes.common import MeterId, Paging, page_of, pubkey, require_user
from backend.api.routes.common import meter_id as meter_id_of
from backend.api.transactions import PreparedTransaction, prepare
from backend.api.views import meter_view
from backend.storage import meters, reading_states
from programs.registry import client as registry

router = APIRouter(prefix="/meters", tags=["meters"])

class MeterRegistration(BaseModel):
    meter_id: MeterId
    public_key: str = Field(..., description="the gateway's Ed25519 public key, 64 hex digits")

    @field_validator("public_key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise ValueError("64 hex digits (32 bytes), as `gateway keygen` prints")
        return value.lower()


@router.post("", response_model=PreparedTransaction, status_code=201,
             summary="register a meter (prosumers): PENDING until an operator activates it")
async def register_meter(body: MeterRegistration, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    user = await require_user(ctx.storage, wallet)
    if user.user_type != "prosumer":
        raise ApiError(403, "not_prosumer", "only prosumers register meters")
    if await meters.get_meter(ctx.storage, body.meter_id) is not None:
        raise ApiError(409, "AlreadyRegistered", f"meter {body.meter_id} is already registered")
    a = ctx.addresses
    ix = registry.register_meter(a.registry, pubkey(wallet), body.meter_id, bytes.fromhex(body.public_key))
    pda = str(registry.meter_address(a.registry, body.meter_id)[0])
    return await prepare(ctx, wallet, "meters.register", [ix], {"meter_id": body.meter_id, "pda": pda})


@router.post("/{meter_id}/activate", response_model=PreparedTransaction,
             summary="operator: activate a pending meter (the operator's wallet signs)")
async def activate(meter_id: str, wallet: Operator, ctx: Ctx) -> PreparedTransaction:
    return await _set_status(meter_id, registry.MeterStatus.ACTIVE, wallet, ctx)


@router.post("/{meter_id}/suspend", response_model=PreparedTransaction, summary="operator: suspend a meter")
async def suspend(meter_id: str, wallet: Operator, ctx: Ctx) -> PreparedTransaction:
    return await _set_status(meter_id, registry.MeterStatus.SUSPENDED, wallet, ctx)


async def _set_status(meter_id: str, status: registry.MeterStatus, wallet: str, ctx: Ctx) -> PreparedTransaction:
    meter = await meters.get_meter(ctx.storage, meter_id_of(meter_id))
    if meter is None:
        raise ApiError(404, "not_found", f"meter {meter_id} is not registered")
    a = ctx.addresses
    ix = registry.set_meter_status(a.registry, pubkey(wallet), registry.meter_address(a.registry, meter_id)[0],
                                   status)
    return await prepare(ctx, wallet, "meters.status", [ix], {"meter_id": meter_id, "status": status.name})


@router.get("", response_model=Page[dict[str, Any]], summary="meters, optionally one owner's")
async def list_meters(ctx: Ctx, paging: Paging,
                      owner: str | None = Query(None, max_length=64)) -> Page[dict[str, Any]]:
    if owner is not None:
        pubkey(owner)
    after = paging.key(str)
    rows = await meters.list_meters(ctx.storage, owner=owner, after=after[0] if after else None, limit=paging.limit)
    return page_of([meter_view(m) for m in rows], paging.limit, ["meter_id"])


@router.get("/{meter_id}", response_model=dict[str, Any], summary="one meter: owner, status, GRID minted")
async def get_meter(meter_id: str, ctx: Ctx) -> dict[str, Any]:
    meter = await meters.get_meter(ctx.storage, meter_id_of(meter_id))
    if meter is None:
        raise ApiError(404, "not_found", f"meter {meter_id} is not registered")
    return meter_view(meter)


@router.get("/{meter_id}/failed-readings", response_model=dict[str, Any],
            summary="the meter's minting retry queue: readings whose settlement failed, why, when retried next "
                    "(its owner or an operator)")
async def failed_readings(meter_id: str, wallet: Wallet, ctx: Ctx,
                          limit: int = Query(100, ge=1, le=500)) -> dict[str, Any]:
    meter = await meters.get_meter(ctx.storage, meter_id_of(meter_id))
    if meter is None:
        raise ApiError(404, "not_found", f"meter {meter_id} is not registered")
    if wallet != meter.owner_wallet and wallet not in ctx.operators:
        raise ApiError(403, "not_owner", f"meter {meter_id} belongs to another wallet")
    rows = await reading_states.list_failed(ctx.storage, limit=limit, meter_id=meter.meter_id)
    return {"meter_id": meter.meter_id, "failed": [_failed_view(r) for r in rows]}


def _failed_view(r: reading_states.FailedReading) -> dict[str, Any]:
    # next_attempt_ms None: attempts exhausted, given up (an operator requeues; docs/backend.md)
    return {"gateway_id": r.gateway_id, "seq": r.seq, "reason": r.reason, "attempts": r.attempts,
            "next_attempt_ms": r.next_attempt_ms, "given_up": r.next_attempt_ms is None, "updated_ms": r.updated_ms}
