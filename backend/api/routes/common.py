"""Helpers the resource routers share: pages, address and meter-id checks, the registered-user check,
balances."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends
from pydantic import Field
from solders.pubkey import Pubkey
from spl.token.instructions import get_associated_token_address

from backend.api.errors import ApiError
from backend.api.pagination import Page, PageParams, encode_cursor, page_params
from backend.storage import Sql, balances, orders, users

__all__ = ["METER_ID_RULE", "MeterId", "Paging", "ata", "balances_of", "meter_id", "page_of", "pubkey", "require_user"]

Paging = Annotated[PageParams, Depends(page_params)]


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


METER_ID_RULE = "1-16 characters of A-Z a-z 0-9 . _ : -"
_METER_ID = re.compile(r"[A-Za-z0-9._:\-]{1,16}")  # the reading format's meter id (docs/reading-format.md)


def meter_id(text: str) -> str:
    """A meter id from a path or query: the reading format's characters only (never a NUL or a control
    character that the database or the chain would refuse later)."""
    if not _METER_ID.fullmatch(text):
        raise ApiError(400, "InvalidMeterId", f"meter ids are {METER_ID_RULE}")
    return text


MeterId = Annotated[str, Field(min_length=1, max_length=16, pattern=f"^{_METER_ID.pattern}$",
                              description=f"meter id: {METER_ID_RULE}")]


def ata(owner: Pubkey | str, mint: Pubkey) -> Pubkey:
    return get_associated_token_address(owner if isinstance(owner, Pubkey) else Pubkey.from_string(owner), mint)


async def require_user(db: Sql, wallet: str) -> users.UserRow:
    user = await users.get_user(db, wallet)
    if user is None or not user.registered:
        raise ApiError(403, "not_registered", "register this wallet first (POST /users)")
    return user


async def balances_of(db: Sql, wallet: str) -> dict[str, int]:
    """D3 as the api shows it: GRID and THBC held, and GRID on offer in open orders (D4)."""
    held = await balances.wallet_balances(db, wallet)
    return {"grid": held["GRID"], "thbc": held["THBC"], "grid_in_escrow": await orders.in_escrow(db, wallet)}
