"""The signed-in wallet as a FastAPI dependency: every mutating route takes one of these."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from backend.api.context import ApiContext, context
from backend.api.errors import ApiError

__all__ = ["Ctx", "MaybeWallet", "Operator", "Wallet", "signed_in_wallet"]

Ctx = Annotated[ApiContext, Depends(context)]


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "not_signed_in", "sign in first: Authorization: Bearer <session token>")
    return token.strip()


def signed_in_wallet(request: Request, ctx: Ctx) -> str:
    """The wallet address of the session token (base58)."""
    return ctx.tokens.wallet_of(_bearer(request))


def maybe_wallet(request: Request, ctx: Ctx) -> str | None:
    """Public reads: anyone may read, but a token that is sent must be valid (never silently ignored)."""
    if "authorization" not in request.headers:
        return None
    return ctx.tokens.wallet_of(_bearer(request))


def operator_wallet(wallet: Annotated[str, Depends(signed_in_wallet)], ctx: Ctx) -> str:
    if wallet not in ctx.operators:
        raise ApiError(403, "not_operator", "this endpoint is for the grid operator's wallets")
    return wallet


Wallet = Annotated[str, Depends(signed_in_wallet)]
Operator = Annotated[str, Depends(operator_wallet)]
MaybeWallet = Annotated[str | None, Depends(maybe_wallet)]
