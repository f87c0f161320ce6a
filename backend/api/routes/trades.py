"""Trades (D5): newest first, filterable by wallet (as buyer or seller) and order."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from backend.api.deps import Ctx, Wallet
from backend.api.pagination import Page, PageParams
from backend.api.routes.common import Paging, page_of, pubkey
from backend.api.views import trade_view
from backend.storage import Sql, trades

router = APIRouter(prefix="/trades", tags=["trades"])


@router.get("", response_model=Page[dict[str, Any]], summary="recent trades")
async def recent(ctx: Ctx, paging: Paging, wallet: str | None = Query(None, max_length=64),
                 order: str | None = Query(None, max_length=64)) -> Page[dict[str, Any]]:
    if wallet is not None:
        pubkey(wallet)
    if order is not None:
        pubkey(order, "order")
    return await newest_trades(ctx.storage, paging, wallet=wallet, order=order)


@router.get("/mine", response_model=Page[dict[str, Any]], summary="my trades, as buyer or seller")
async def mine(wallet: Wallet, ctx: Ctx, paging: Paging) -> Page[dict[str, Any]]:
    return await newest_trades(ctx.storage, paging, wallet=wallet)


async def newest_trades(db: Sql, paging: PageParams, *, wallet: str | None = None,
                        order: str | None = None) -> Page[dict[str, Any]]:
    """D5 newest first, by the chain's order (the event id: the cursor)."""
    after = paging.key(int)
    rows = await trades.list_trades(db, wallet=wallet, order_address=order, after=after[0] if after else None,
                                    newest_first=True, limit=paging.limit)
    return page_of([trade_view(t) for t in rows], paging.limit, ["id"])
