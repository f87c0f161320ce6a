"""Trades (D5): newest first, filterable by wallet (as buyer or seller) and order."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from backend.api.deps import Wallet
from backend.api.pagination import Page
from backend.api.routes.common import Paging, Reads, page_of, pubkey

router = APIRouter(prefix="/trades", tags=["trades"])


@router.get("", response_model=Page[dict[str, Any]], summary="recent trades")
async def trades(r: Reads, paging: Paging, wallet: str | None = Query(None, max_length=64),
                 order: str | None = Query(None, max_length=64)) -> Page[dict[str, Any]]:
    if wallet is not None:
        pubkey(wallet)
    if order is not None:
        pubkey(order, "order")
    rows = await r.trades(paging.limit, paging.after, wallet=wallet, order=order)
    return page_of(rows, paging.limit, ["id"])


@router.get("/mine", response_model=Page[dict[str, Any]], summary="my trades, as buyer or seller")
async def mine(wallet: Wallet, r: Reads, paging: Paging) -> Page[dict[str, Any]]:
    rows = await r.trades(paging.limit, paging.after, wallet=wallet)
    return page_of(rows, paging.limit, ["id"])
