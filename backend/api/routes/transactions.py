"""``POST /transactions``: the signed transaction comes back with its intent; checked, then submitted.

After the chain confirms, only registration writes anything here (the D1 profile's name, which has no
on-chain event); everything else reaches the database through the indexer, which the answer waits for
(``indexed``)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import Ctx, Wallet
from backend.api.routes import users
from backend.api.transactions import SignedTransaction, Submitted, submit, wait_indexed

router = APIRouter(tags=["transactions"])


@router.post("/transactions", response_model=Submitted,
             summary="submit a transaction this api built, signed by the wallet it was built for")
async def submit_signed(body: SignedTransaction, wallet: Wallet, ctx: Ctx) -> Submitted:
    claims, submitted = await submit(ctx, wallet, body)
    if submitted.action == "users.register":
        await users.on_registered(ctx.storage, wallet, dict(claims.get("det") or {}))
    submitted.indexed = await wait_indexed(ctx, submitted.signature)
    return submitted
