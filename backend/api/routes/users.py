"""Registration (design 1.0): profile → duplicate check → user account on chain (the wallet signs) →
D1 once the chain confirms (the /transactions hook for ``users.register``)."""

from __future__ import annotations

import re
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator
from spl.token.instructions import create_idempotent_associated_token_account

from backend.api.deps import Ctx, Wallet
from backend.api.errors import ApiError
from backend.api.routes.common import balances_of, pubkey
from backend.api.transactions import PreparedTransaction, prepare
from backend.api.views import user_view
from backend.storage import Sql, users
from programs.registry import client as registry

router = APIRouter(tags=["users"])

_NAME = re.compile(r"^[\w .,'()-]{1,100}$", re.UNICODE)
KINDS = {"prosumer": registry.UserKind.PROSUMER, "consumer": registry.UserKind.CONSUMER}


class Registration(BaseModel):
    name: str = Field(..., min_length=1, max_length=100, description="display name")
    kind: Literal["prosumer", "consumer"]

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not _NAME.match(value):
            raise ValueError("letters, digits, spaces and . , ' ( ) - only")
        return value


class Profile(BaseModel):
    wallet: str
    name: str | None
    kind: str
    pda: str | None = Field(description="the registry's user account; null until the chain confirmed it")
    registered_at: int | None
    created_ms: int


class Balances(BaseModel):
    grid: int = Field(description="GRID base units (10^9 per kWh) in the wallet")
    thbc: int = Field(description="THBC base units (10^6 per baht)")
    grid_in_escrow: int = Field(description="GRID offered in open orders")


class Me(BaseModel):
    profile: Profile | None
    balances: Balances
    operator: bool


@router.post("/users", response_model=PreparedTransaction, status_code=201,
             summary="register the signed-in wallet: returns the transaction to sign")
async def register(body: Registration, wallet: Wallet, ctx: Ctx) -> PreparedTransaction:
    existing = await users.get_user(ctx.storage, wallet)
    if existing is not None and existing.registered:
        raise ApiError(409, "AlreadyRegistered", "this wallet is already registered")
    if await users.name_taken(ctx.storage, body.name, wallet):
        raise ApiError(409, "name_taken", f"the name {body.name!r} is taken")
    key = pubkey(wallet)
    a = ctx.addresses
    instructions = [
        registry.register_user(a.registry, key, KINDS[body.kind]),
        # the accounts GRID and THBC will arrive in, paid by the wallet (rent comes back if closed)
        create_idempotent_associated_token_account(key, key, a.grid_mint),
        create_idempotent_associated_token_account(key, key, a.thbc_mint),
    ]
    pda = str(registry.user_address(a.registry, key)[0])
    return await prepare(ctx, wallet, "users.register", instructions,
                         {"name": body.name, "kind": body.kind, "pda": pda})


async def on_registered(db: Sql, wallet: str, details: dict[str, Any]) -> None:
    """After the chain confirmed the user account: the profile (name, kind) into D1 (design 1.6). The
    registration itself (the user account, when) is the indexer's to write, from UserRegistered."""
    await users.save_profile(db, wallet, str(details["kind"]), str(details["name"]))


@router.get("/users/me", response_model=Me, summary="my profile and balances (D1, D3)")
async def me(wallet: Wallet, ctx: Ctx) -> Me:
    user = await users.get_user(ctx.storage, wallet)
    return Me(profile=Profile(**user_view(user)) if user else None,
              balances=Balances(**await balances_of(ctx.storage, wallet)), operator=wallet in ctx.operators)


@router.get("/users/{wallet}", response_model=Profile, summary="a registered user's public profile")
async def profile(wallet: str, ctx: Ctx) -> Profile:
    pubkey(wallet)
    user = await users.get_user(ctx.storage, wallet)
    if user is None:
        raise ApiError(404, "not_found", "no user with this wallet")
    return Profile(**user_view(user))
