"""Payments in THBC (design 7.0) through the programs: the payment operator issues THBC against a fiat
deposit reference with the payments program's ``Issue`` (THBC's mint authority is that program's PDA;
each reference has one deposit record on chain, so it is issued once), a holder redeems THBC with
``Redeem`` (burned, naming the payout), a consumer burns the GRID it consumed with the energy token's
``Consume``. Every movement logs an event, from which the indexer writes D7; the api never does."""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field
from spl.token import instructions as spl

from backend.api.context import ApiContext
from backend.api.deps import Ctx, Operator, Wallet
from backend.api.errors import ApiError
from backend.api.pagination import Page
from backend.api.routes.common import Paging, ata, balances_of, page_of, pubkey, require_user
from backend.api.transactions import PreparedTransaction, prepare
from backend.api.views import payment_view
from backend.storage import payments as d7
from programs.client.chain import ChainError
from programs.energy_token import client as energy_token
from programs.payments import client as payments_program

router = APIRouter(prefix="/payments", tags=["payments"])

PAGE_KEY = ["id"]
# A subset of what programs.payments.client.reference_bytes takes (1-32 printable ASCII): no characters a
# bank statement or a URL would mangle. Stored in D7 as this same text (payments.reference_text).
REFERENCE = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
REFERENCE_RULE = "1-32 characters of A-Z a-z 0-9 . _ : / -"


def _reference(value: str) -> str:
    if not REFERENCE.fullmatch(value):
        raise ValueError(REFERENCE_RULE)
    return value


Reference = Annotated[str, AfterValidator(_reference)]


class Issue(BaseModel):
    wallet: str = Field(..., max_length=64, description="who deposited the baht")
    amount: int = Field(..., gt=0, lt=2**63, description="THBC base units (10^6 per baht)")
    reference: Reference = Field(..., min_length=1, max_length=32,
                                 description="the bank deposit reference, recorded on chain; each is issued once")


class Redemption(BaseModel):
    amount: int = Field(..., gt=0, lt=2**63, description="THBC base units to burn")
    payout_reference: Reference | None = Field(
        None, min_length=1, max_length=32,
        description="names the bank payout this redemption asks for (recorded on chain); the api makes a "
                    "unique one when it is left out")


class Amount(BaseModel):
    amount: int = Field(..., gt=0, lt=2**63, description="base units")


T = TypeVar("T")


async def _read(what: str, call: Awaitable[T]) -> T:
    try:
        return await call
    except ChainError as exc:
        raise ApiError(503, "chain_unavailable", f"cannot read {what} from the chain: {exc}") from None


@router.post("/issue", response_model=PreparedTransaction, status_code=201,
             summary="payment operator: issue THBC against a fiat deposit reference (each reference once)")
async def issue(body: Issue, wallet: Operator, ctx: Ctx) -> PreparedTransaction:
    program, mint = ctx.addresses.payments, ctx.addresses.thbc_mint
    config = await _read("the payments config", ctx.chain.get_account(payments_program.config_address(program)[0]))
    if config is None or config.owner != program:
        raise ApiError(503, "payments_not_configured", "the payments program has no config on this chain")
    if payments_program.PaymentsConfig.decode(bytes(config.data)).operator != pubkey(wallet):
        raise ApiError(403, "NotOperator", "this wallet is not the payments program's operator")
    # D7 first (no chain round trip); then the deposit record itself, which the chain checks too, so a
    # reference is refused before signing even while the indexer has not caught up.
    if await d7.list_payments(ctx.storage, kind="ISSUE", reference=body.reference, limit=1) or await _read(
            "the deposit record", payments_program.fetch_deposit(ctx.chain, program, body.reference)) is not None:
        raise ApiError(409, "ReferenceAlreadyUsed", f"deposit reference {body.reference!r} has already been issued")
    operator, payee = pubkey(wallet), pubkey(body.wallet)
    ixs = [
        spl.create_idempotent_associated_token_account(operator, payee, mint),
        payments_program.issue(program, operator, mint, ata(payee, mint), body.reference, body.amount),
    ]
    return await prepare(ctx, wallet, "payments.issue", ixs,
                         {"wallet": body.wallet, "amount": body.amount, "reference": body.reference})


async def _holding(ctx: ApiContext, wallet: str, asset: str, amount: int) -> None:
    """Checks 7.0 before anything is signed: registered, and holds ``amount`` (the programs' name)."""
    await require_user(ctx.storage, wallet)
    held = (await balances_of(ctx.storage, wallet))["thbc" if asset == "THBC" else "grid"]
    if held < amount:
        raise ApiError(422, "InsufficientBalance", f"you hold {held} {asset} base units")


@router.post("/redeem", response_model=PreparedTransaction,
             summary="redeem THBC for baht: the payments program burns it and records the payout reference")
async def redeem(body: Redemption, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    await _holding(ctx, wallet, "THBC", body.amount)
    payout = body.payout_reference or f"payout-{secrets.token_hex(12)}"
    ix = payments_program.redeem(ctx.addresses.payments, pubkey(wallet), ctx.addresses.thbc_mint, body.amount, payout)
    return await prepare(ctx, wallet, "payments.redeem", [ix],
                         {"asset": "THBC", "amount": body.amount, "payout_reference": payout})


@router.post("/consume", response_model=PreparedTransaction,
             summary="burn GRID for energy consumed, through the energy token's Consume")
async def consume(body: Amount, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    await _holding(ctx, wallet, "GRID", body.amount)
    ix = energy_token.consume(ctx.addresses.energy_token, pubkey(wallet), ctx.addresses.grid_mint, body.amount)
    return await prepare(ctx, wallet, "payments.consume", [ix], {"asset": "GRID", "amount": body.amount})


@router.get("", response_model=Page[dict[str, Any]], summary="payment records (D7), newest first")
async def payments(ctx: Ctx, paging: Paging, wallet: str | None = Query(None, max_length=64)) -> Page[dict[str, Any]]:
    if wallet is not None:
        pubkey(wallet)
    after = paging.key(int)
    rows = await d7.list_payments(ctx.storage, wallet=wallet, after=after[0] if after else None, newest_first=True,
                                  limit=paging.limit)
    return page_of([payment_view(p) for p in rows], paging.limit, PAGE_KEY)
