"""``POST /transactions``: the signed transaction comes back with its intent; checked, then submitted.

After the chain confirms, only registration writes anything here (the D1 profile, which has no on-chain
event); everything else reaches the database through the indexer."""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.deps import Ctx, Wallet
from backend.api.routes import users
from backend.api.routes.common import Reads
from backend.api.transactions import SignedTransaction, Submitted, submit

router = APIRouter(tags=["transactions"])


@router.post("/transactions", response_model=Submitted,
             summary="submit a transaction this api built, signed by the wallet it was built for")
async def submit_signed(body: SignedTransaction, wallet: Wallet, ctx: Ctx, r: Reads) -> Submitted:
    claims, submitted = await submit(ctx, wallet, body)
    if submitted.action == "users.register":
        await users.on_registered(r, wallet, dict(claims.get("det") or {}), submitted.signature)
    return submitted
