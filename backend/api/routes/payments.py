"""Payments in THBC (design 7.0): the payment operator issues THBC against a fiat deposit reference
(each reference once), a holder redeems THBC by burning it, a consumer burns the GRID it consumed.
Every movement is recorded in D7 by the indexer."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, field_validator
from spl.memo.constants import MEMO_PROGRAM_ID
from spl.memo.instructions import create_memo
from spl.memo.models import MemoParams
from spl.token import instructions as spl
from spl.token import models as spl_models
from spl.token.constants import TOKEN_PROGRAM_ID

from backend.api.deps import Ctx, Operator, Wallet
from backend.api.errors import ApiError
from backend.api.pagination import Page
from backend.api.routes.common import Paging, Reads, ata, page_of, pubkey, require_user
from backend.api.transactions import PreparedTransaction, prepare

router = APIRouter(prefix="/payments", tags=["payments"])

PAGE_KEY = ["id"]
# Until the payments program (issue 7) records deposit references on chain, the reference travels in a
# Memo instruction of the same transaction, so the indexer can put it in D7 from the chain alone.
DEPOSIT_MEMO = "gridtokenx:deposit:"


class Issue(BaseModel):
    wallet: str = Field(..., max_length=64, description="who deposited the baht")
    amount: int = Field(..., gt=0, lt=2**63, description="THBC base units (10^6 per baht)")
    reference: str = Field(..., min_length=1, max_length=32, description="the bank deposit reference")

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._:/-]{1,32}", value):
            raise ValueError("1-32 characters of A-Z a-z 0-9 . _ : / -")
        return value


class Amount(BaseModel):
    amount: int = Field(..., gt=0, lt=2**63, description="base units")


@router.post("/issue", response_model=PreparedTransaction, status_code=201,
             summary="payment operator: issue THBC against a fiat deposit reference (each reference once)")
async def issue(body: Issue, wallet: Operator, ctx: Ctx, r: Reads) -> PreparedTransaction:
    if await r.reference_used(body.reference):
        raise ApiError(409, "ReferenceUsed", f"deposit reference {body.reference!r} has already been issued")
    payee = pubkey(body.wallet)
    a = ctx.addresses
    ixs = [
        spl.create_idempotent_associated_token_account(pubkey(wallet), payee, a.thbc_mint),
        spl.mint_to(spl_models.MintToParams(program_id=TOKEN_PROGRAM_ID, mint=a.thbc_mint,
                                            dest=ata(payee, a.thbc_mint), mint_authority=pubkey(wallet),
                                            amount=body.amount)),
        create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=pubkey(wallet),
                               message=(DEPOSIT_MEMO + body.reference).encode())),
    ]
    return await prepare(ctx, wallet, "payments.issue", ixs,
                         {"wallet": body.wallet, "amount": body.amount, "reference": body.reference})


async def _burn(ctx: Ctx, r: Reads, wallet: str, asset: str, amount: int) -> PreparedTransaction:
    await require_user(ctx, r, wallet)
    balances = await r.balances(wallet)
    held = balances["thbc" if asset == "THBC" else "grid"]
    if held < amount:
        raise ApiError(422, "InsufficientBalance", f"you hold {held} {asset} base units")
    owner = pubkey(wallet)
    mint = ctx.addresses.thbc_mint if asset == "THBC" else ctx.addresses.grid_mint
    ix = spl.burn(spl_models.BurnParams(program_id=TOKEN_PROGRAM_ID, account=ata(owner, mint), mint=mint, owner=owner,
                                 amount=amount))
    action = "payments.redeem" if asset == "THBC" else "payments.consume"
    return await prepare(ctx, wallet, action, [ix], {"asset": asset, "amount": amount})


@router.post("/redeem", response_model=PreparedTransaction, summary="redeem THBC for baht: the THBC is burned")
async def redeem(body: Amount, wallet: Wallet, ctx: Ctx, r: Reads) -> PreparedTransaction:
    return await _burn(ctx, r, wallet, "THBC", body.amount)


@router.post("/consume", response_model=PreparedTransaction,
             summary="burn GRID for energy consumed (tokens end burned or retired)")
async def consume(body: Amount, wallet: Wallet, ctx: Ctx, r: Reads) -> PreparedTransaction:
    return await _burn(ctx, r, wallet, "GRID", body.amount)


@router.get("", response_model=Page[dict[str, Any]], summary="payment records (D7), newest first")
async def payments(r: Reads, paging: Paging, wallet: str | None = Query(None, max_length=64)) -> Page[dict[str, Any]]:
    if wallet is not None:
        pubkey(wallet)
    return page_of(await r.payments(paging.limit, paging.after, wallet=wallet), paging.limit, PAGE_KEY)
