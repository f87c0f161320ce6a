"""Orders (design 4.0) and buying (5.0). Checks 4.1 / 5.1 are answered before anything is signed,
with the trading program's error names; the program checks them all again on chain.

Amounts are GRID base units (10^9 per kWh); prices THBC base units (10^6 per baht) per kWh.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from spl.token.instructions import create_idempotent_associated_token_account

from backend.api.context import ApiContext
from backend.api.deps import Ctx, MaybeWallet, Wallet
from backend.api.errors import ApiError
from backend.api.pagination import Page, PageParams
from backend.api.routes.common import Paging, ata, balances_of, page_of, pubkey, require_user
from backend.api.routes.trades import newest_trades
from backend.api.transactions import PreparedTransaction, prepare
from backend.api.views import order_view
from backend.storage import I64_MAX, orders
from programs.trading import client as trading

router = APIRouter(prefix="/orders", tags=["orders"])

U64_MAX = 2**64 - 1
ORDER_STATES = {"ACTIVE", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "EXPIRED"}
BOOK_KEY = ["price", "created_at", "address"]


class NewOrder(BaseModel):
    amount: int = Field(..., ge=0, le=U64_MAX, description="GRID base units to sell (10^9 per kWh)")
    price: int = Field(..., ge=0, le=U64_MAX, description="THBC base units per kWh")
    expires_at: int | None = Field(None, ge=-I64_MAX - 1, le=I64_MAX,
                                   description="unix seconds; default: now + expires_in")
    expires_in: int = Field(3600, ge=1, le=90 * 86400, description="seconds, when expires_at is not given")
    max_fee_bps: int = Field(100, ge=0, le=10_000, description="the highest market fee the seller accepts "
                             "(basis points); the order keeps the market's fee when it lands, or is refused "
                             "with FeeAboveLimit")


class BuyRequest(BaseModel):
    amount: int | None = Field(None, ge=0, le=U64_MAX, description="GRID base units; default: all remaining")


def _refuse(code: str, message: str, status: int = 422) -> ApiError:
    return ApiError(status, code, message)


@router.post("", response_model=PreparedTransaction, status_code=201,
             summary="offer GRID for sale: the GRID moves into the order's escrow when signed (4.0)")
async def create(body: NewOrder, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    if body.amount == 0:
        raise _refuse("ZeroAmount", "amount must be more than 0")
    if body.price == 0:
        raise _refuse("ZeroPrice", "price must be more than 0")
    now = int(time.time())
    expires_at = body.expires_at if body.expires_at is not None else now + body.expires_in
    if expires_at <= now:
        raise _refuse("ExpiryInPast", "expires_at must be in the future")
    if trading.trade_cost(body.amount, body.price) > U64_MAX:
        raise _refuse("CostOverflow", "amount x price is too large")
    await require_user(ctx.storage, wallet)
    balance = (await balances_of(ctx.storage, wallet))["grid"]
    if balance < body.amount:
        raise _refuse("InsufficientBalance", f"you hold {balance} GRID base units, the order needs {body.amount}")
    seller = pubkey(wallet)
    a = ctx.addresses
    order_id = secrets.randbits(63)  # random: two orders prepared at once never collide on the order PDA
    ix = trading.create_order(a.trading, seller, ata(seller, a.grid_mint), a.grid_mint, order_id, body.amount,
                              body.price, expires_at, max_fee_bps=body.max_fee_bps)
    address = str(trading.order_address(a.trading, seller, order_id)[0])
    return await prepare(ctx, wallet, "orders.create", [ix], {
        "order": address, "order_id": order_id, "amount": body.amount, "price": body.price,
        "expires_at": expires_at, "max_fee_bps": body.max_fee_bps})


async def _open_order(ctx: ApiContext, address: str) -> orders.OrderRow:
    pubkey(address, "order")
    order = await orders.get_order(ctx.storage, address)
    if order is None:
        raise ApiError(404, "not_found", f"no order {address}")
    if not order.is_open:
        raise _refuse("OrderNotActive", f"the order is {order.state}")
    return order


@router.post("/{address}/buy", response_model=PreparedTransaction,
             summary="buy all or part of an order, paying THBC (5.0)")
async def buy(address: str, body: BuyRequest, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    order = await _open_order(ctx, address)
    if order.expires_at is not None and order.expires_at <= int(time.time()):
        raise _refuse("OrderExpired", "the order has expired")
    if order.seller == wallet:
        raise _refuse("SelfTrade", "you cannot buy your own order")
    amount = order.remaining if body.amount is None else body.amount
    if amount == 0:
        raise _refuse("ZeroAmount", "amount must be more than 0")
    if amount > order.remaining:
        raise _refuse("AmountExceedsRemaining", f"only {order.remaining} GRID base units are left")
    await require_user(ctx.storage, wallet)
    cost = trading.trade_cost(amount, order.price)
    thbc = (await balances_of(ctx.storage, wallet))["thbc"]
    if thbc < cost:
        raise _refuse("InsufficientBalance", f"you hold {thbc} THBC base units, this buy costs {cost}")
    buyer, seller = pubkey(wallet), pubkey(order.seller)
    a = ctx.addresses
    instructions = [
        create_idempotent_associated_token_account(buyer, buyer, a.grid_mint),
        trading.buy(a.trading, buyer, seller, order.order_id, amount, buyer_grid=ata(buyer, a.grid_mint),
                    buyer_thbc=ata(buyer, a.thbc_mint), seller_thbc=ata(seller, a.thbc_mint),
                    fee_account=a.fee_account, order=pubkey(address, "order")),
    ]
    return await prepare(ctx, wallet, "orders.buy", instructions,
                         {"order": address, "amount": amount, "cost": cost})


@router.post("/{address}/cancel", response_model=PreparedTransaction,
             summary="cancel my order: the unsold GRID comes back from escrow (4.6)")
async def cancel(address: str, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    order = await _open_order(ctx, address)
    if order.seller != wallet:
        raise ApiError(403, "NotSeller", "only the seller can cancel an order")
    seller = pubkey(wallet)
    a = ctx.addresses
    ix = trading.cancel_order(a.trading, seller, order.order_id, ata(seller, a.grid_mint),
                              order=pubkey(address, "order"))
    return await prepare(ctx, wallet, "orders.cancel", [ix], {"order": address})


def book_version_key(ctx: ApiContext) -> str:
    return ctx.settings.redis_prefix + "book:version"


async def invalidate_book(ctx: ApiContext) -> None:
    """A trading event was applied: cached pages of the book are stale (the key names the version)."""
    if ctx.redis is not None:
        await ctx.redis.incr(book_version_key(ctx))


async def _cached_book(ctx: ApiContext, paging: PageParams, filters: dict[str, Any]) -> Response:
    """The page as JSON bytes: from Redis when cached (sent as stored, no re-validation), else from D4."""
    key = None
    if ctx.redis is not None and ctx.settings.book_cache_ttl_s > 0:
        version = (await ctx.redis.get(book_version_key(ctx))) or b"0"
        key = (ctx.settings.redis_prefix + "book:" + version.decode() + ":"
               + json.dumps([paging.limit, paging.after, filters], sort_keys=True))
        cached = await ctx.redis.get(key)
        if cached is not None:
            return Response(cached, media_type="application/json")
    after = paging.key(int, int, str)
    rows = await orders.order_book(ctx.storage, now=int(time.time()), limit=paging.limit,
                                   after=(after[0], after[1], after[2]) if after else None, **filters)
    body = page_of([order_view(o) for o in rows], paging.limit, BOOK_KEY).model_dump_json().encode()
    if key is not None:
        # A burst of readers costs one query; a trading event bumps the version (so a new order shows at
        # once), and the TTL bounds staleness should an event be missed (expiry by the clock, a lost feed).
        await ctx.redis.set(key, body, px=int(ctx.settings.book_cache_ttl_s * 1000))
    return Response(body, media_type="application/json")


@router.get("/book", response_model=Page[dict[str, Any]],
            summary="the order book: open orders, lowest price first, then oldest (D4, Redis-cached)")
async def book(ctx: Ctx, paging: Paging, reader: MaybeWallet,
               min_price: int | None = Query(None, ge=0, le=I64_MAX),
               max_price: int | None = Query(None, ge=0, le=I64_MAX),
               seller: str | None = Query(None, max_length=64)) -> Response:
    if seller is not None:
        pubkey(seller)
    return await _cached_book(ctx, paging, {"min_price": min_price, "max_price": max_price, "seller": seller})


@router.get("/mine", response_model=Page[dict[str, Any]], summary="my orders, newest first")
async def mine(wallet: Wallet, ctx: Ctx, paging: Paging,
               state: str | None = Query(None, description="comma-separated states")) -> Page[dict[str, Any]]:
    states = [s.strip().upper() for s in state.split(",")] if state else None
    if states and not set(states) <= ORDER_STATES:
        raise ApiError(400, "bad_state", f"states are {', '.join(sorted(ORDER_STATES))}")
    before = paging.key(int, str)
    rows = await orders.recent_orders(ctx.storage, wallet, states=states, limit=paging.limit,
                                      before=(before[0], before[1]) if before else None)
    return page_of([order_view(o) for o in rows], paging.limit, ["created_at", "address"])


@router.get("/{address}", response_model=dict[str, Any], summary="one order, with its trades (newest first)")
async def get_order(address: str, ctx: Ctx) -> dict[str, Any]:
    pubkey(address, "order")
    order = await orders.get_order(ctx.storage, address)
    if order is None:
        raise ApiError(404, "not_found", f"no order {address}")
    trades = await newest_trades(ctx.storage, PageParams(100, None), order=address)
    return {**order_view(order), "trades": trades.items}
