"""Sign-in (design 1.2 wallet format, 1.3 signature): nonce → the wallet signs the SIWS message → token.

``POST /auth/nonce`` issues a single-use nonce and every field the message must carry (the Wallet
Standard ``solana:signIn`` input); with ``address`` it also returns the exact text to sign, for wallets
that only have ``signMessage`` (and the CLI wallet). ``POST /auth/login`` checks the message field by
field, the nonce (once, unexpired), the Ed25519 signature, and answers a short-lived session token.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time

from fastapi import APIRouter
from pydantic import BaseModel, Field

from backend.api.auth.siws import (
    SiwsError,
    SiwsMessage,
    check_wallet,
    format_timestamp,
    parse_timestamp,
    verify_signature,
)
from backend.api.deps import Ctx, Wallet
from backend.api.errors import ApiError
from backend.api.wire import decode_signature

router = APIRouter(prefix="/auth", tags=["auth"])


class NonceRequest(BaseModel):
    address: str | None = Field(None, max_length=64, description="wallet (base58); then `message` is returned")


class SignInInput(BaseModel):
    """The Wallet Standard SolanaSignInInput the wallet must sign (field names as the standard's)."""

    domain: str
    statement: str
    uri: str
    version: str
    chainId: str
    nonce: str
    issuedAt: str
    expirationTime: str
    address: str | None = None
    message: str | None = Field(None, description="the exact text to sign, when `address` was given")


class LoginRequest(BaseModel):
    message: str = Field(..., max_length=2048, description="the signed SIWS message, as text")
    signature: str = Field(..., max_length=128, description="Ed25519 signature, base58 (or base64)")


class Session(BaseModel):
    token: str
    wallet: str
    expires_at: int
    operator: bool


class Me(BaseModel):
    wallet: str
    operator: bool


def _refuse(exc: SiwsError) -> ApiError:
    status = 400 if exc.code in {"bad_message", "bad_wallet"} else 401
    return ApiError(status, exc.code, str(exc))


@router.post("/nonce", response_model=SignInInput, summary="start a sign-in: a nonce and the message fields")
async def issue_nonce(body: NonceRequest, ctx: Ctx) -> SignInInput:
    s = ctx.settings
    if body.address is not None:
        try:
            check_wallet(body.address)
        except SiwsError as exc:
            raise _refuse(exc) from None
    nonce = secrets.token_hex(16)
    await ctx.nonces.issue(nonce, s.nonce_ttl_s)
    now = dt.datetime.now(dt.UTC)
    issued, expires = format_timestamp(now), format_timestamp(now + dt.timedelta(seconds=s.nonce_ttl_s))
    message = None
    if body.address is not None:
        message = SiwsMessage(s.domain, body.address, s.statement, s.uri, "1", s.chain_id, nonce, issued,
                              expires).text()
    return SignInInput(domain=s.domain, statement=s.statement, uri=s.uri, version="1", chainId=s.chain_id,
                       nonce=nonce, issuedAt=issued, expirationTime=expires, address=body.address, message=message)


@router.post("/login", response_model=Session, summary="finish a sign-in: the signed message → session token")
async def login(body: LoginRequest, ctx: Ctx) -> Session:
    s = ctx.settings
    try:
        message = SiwsMessage.parse(body.message)
        wallet = check_wallet(message.address)
        if message.domain != s.domain:
            raise SiwsError("wrong_domain", f"the message is for {message.domain!r}, this is {s.domain!r}")
        if message.uri != s.uri:
            raise SiwsError("wrong_domain", f"the message names URI {message.uri!r}, this is {s.uri!r}")
        if message.version != "1" or message.chain_id != s.chain_id:
            raise SiwsError("wrong_chain", f"the message is for chain {message.chain_id!r} version "
                                           f"{message.version!r}; this is {s.chain_id!r} version '1'")
        now = time.time()
        issued = parse_timestamp(message.issued_at).timestamp()
        expires = parse_timestamp(message.expiration_time).timestamp()
        if issued > now + s.clock_skew_s:
            raise SiwsError("bad_message", "the message was issued in the future")
        if expires <= now or expires - issued > s.nonce_ttl_s + s.clock_skew_s:
            raise SiwsError("expired", "the sign-in message has expired: ask for a new nonce")
        verify_signature(wallet, body.message.encode(), decode_signature(body.signature))
    except SiwsError as exc:
        raise _refuse(exc) from None
    # The nonce is spent only by a message that passed every other check, so a forged attempt cannot
    # burn someone else's nonce; and it is spent before the token is issued, so it works once.
    if not await ctx.nonces.consume(message.nonce):
        raise ApiError(401, "nonce_used", "this nonce is unknown, expired or already used: ask for a new one")
    token, token_expires = ctx.tokens.session(message.address)
    return Session(token=token, wallet=message.address, expires_at=token_expires,
                   operator=message.address in ctx.operators)


@router.get("/me", response_model=Me, summary="who the session token belongs to")
async def me(wallet: Wallet, ctx: Ctx) -> Me:
    return Me(wallet=wallet, operator=wallet in ctx.operators)
