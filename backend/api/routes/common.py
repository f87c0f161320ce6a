"""Shapes and helpers the resource routers share."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends
from pydantic import BaseModel
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from backend.api.context import ApiContext
from backend.api.deps import Ctx
from backend.api.errors import ApiError
from backend.api.pagination import Page, PageParams, encode_cursor, page_params
from backend.storage.api_reads import ApiReads

__all__ = ["Paging", "Reads", "ata", "page_of", "pubkey", "reads", "require_user"]


def reads(ctx: Ctx) -> ApiReads:
    return ApiReads(ctx.storage)


Reads = Annotated[ApiReads, Depends(reads)]
Paging = Annotated[PageParams, Depends(page_params)]


class Item(BaseModel):
    model_config = {"extra": "allow"}


def page_of(rows: list[dict[str, Any]], limit: int, key: list[str]) -> Page[dict[str, Any]]:
    """One page; ``next`` only when the page is full (the cursor is the last row's sort key)."""
    nxt = encode_cursor([rows[-1][k] for k in key]) if len(rows) == limit and rows else None
    return Page[dict[str, Any]](items=rows, next=nxt)


def pubkey(text: str, what: str = "wallet") -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except ValueError:
        raise ApiError(400, "bad_wallet" if what == "wallet" else "bad_address",
                       f"{what} {text[:60]!r} is not base58 of 32 bytes") from None


def ata(owner: Pubkey | str, mint: Pubkey) -> Pubkey:
    return get_associated_token_address(owner if isinstance(owner, Pubkey) else Pubkey.from_string(owner), mint)


async def require_user(ctx: ApiContext, r: ApiReads, wallet: str) -> dict[str, Any]:
    user = await r.user(wallet)
    if user is None:
        raise ApiError(403, "not_registered", "register this wallet first (POST /users)")
    return user
