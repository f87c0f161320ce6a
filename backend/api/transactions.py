"""Non-custodial transactions: the api builds, the wallet signs, the api checks and submits.

``prepare`` compiles the instructions (from programs/<name>/client.py) into a message with a recent
blockhash and answers it as an unsigned wire transaction — what a wallet's ``signTransaction`` takes —
together with an *intent*: a short-lived token (signed with the api's key) naming the wallet, the action
and the SHA-256 of the message. No state is kept between the two calls, so any api instance can take the
signed transaction back.

``submit`` accepts the signed transaction only if its message is byte for byte the one built for this
wallet (so a wallet, or anyone on the way, cannot swap an instruction or an account), every signature
except the fee payer's is present and valid, and the intent has not expired. Only then does the backend
add its own signature — as fee payer, when it pays fees, never for anything else — and send it. A chain
refusal comes back with the program's error name as the ``code``.

The api writes nothing of what the chain did: :func:`wait_indexed` waits (up to ``index_wait_s``) until the
indexer has applied the transaction, so the answer means "done, and visible in every read".
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field
from solders.instruction import Instruction
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction

from backend.api.context import ApiContext
from backend.api.errors import ApiError
from backend.api.wire import b64, unb64
from backend.storage import certificate_requests, events
from backend.storage.sql import now_ms
from programs.certificates.client import CERTIFICATES_ERRORS
from programs.client.chain import ChainError, TxResult
from programs.client.errors import ProgramErrors
from programs.energy_token.client import ENERGY_TOKEN_ERRORS
from programs.payments.client import PAYMENTS_ERRORS
from programs.registry.client import REGISTRY_ERRORS
from programs.trading.client import TRADING_ERRORS

__all__ = ["ISSUE_ACTION", "PreparedTransaction", "SignedTransaction", "Submitted", "prepare", "prepared_digest",
           "submit", "wait_indexed"]

MAX_TRANSACTION_BYTES = 1232  # a Solana packet
ISSUE_ACTION = "certificates.issue"  # holds its certificate index while in flight (routes/certificates.py)
# How long a submitted transaction may still land after it was sent (a cluster drops it once its blockhash,
# ~150 slots, is too old); a certificate request's index is held that long when the answer is unknown.
IN_FLIGHT_S = 120


class PreparedTransaction(BaseModel):
    """Sign ``transaction`` with the wallet, then POST it with ``intent`` to /transactions."""

    action: str
    transaction: str = Field(description="unsigned wire transaction, base64 (for signTransaction)")
    intent: str = Field(description="pass back unchanged with the signed transaction")
    fee_payer: str
    signers: list[str] = Field(description="who must sign, fee payer first")
    expires_at: int = Field(description="unix seconds; after this, ask for a new transaction")
    details: dict[str, Any] = Field(default_factory=dict)


class SignedTransaction(BaseModel):
    intent: str = Field(..., max_length=4096)
    transaction: str = Field(..., max_length=2 * MAX_TRANSACTION_BYTES, description="signed, base64")


class Submitted(BaseModel):
    action: str
    signature: str
    compute_units: int
    indexed: bool = Field(default=False, description="the indexer has applied the transaction: every read shows it "
                                             "(false: it is on chain, the database follows shortly)")
    details: dict[str, Any] = Field(default_factory=dict)


def message_digest(message: Message) -> str:
    return hashlib.sha256(bytes(message)).hexdigest()


async def prepare(ctx: ApiContext, wallet: str, action: str, instructions: Sequence[Instruction],
                  details: dict[str, Any] | None = None) -> PreparedTransaction:
    user = Pubkey.from_string(wallet)
    payer = ctx.fee_payer.pubkey() if ctx.fee_payer is not None else user
    try:
        blockhash = await ctx.chain.latest_blockhash()
    except ChainError as exc:
        raise ApiError(503, "chain_unavailable", f"cannot reach the chain: {exc}") from None
    message = Message.new_with_blockhash(list(instructions), payer, blockhash)
    signers = [str(k) for k in message.account_keys[: message.header.num_required_signatures]]
    if wallet not in signers:
        raise ApiError(500, "internal", f"{action}: the built transaction does not need the wallet's signature")
    unknown = set(signers) - {wallet, str(payer)}
    if unknown:
        raise ApiError(500, "internal", f"{action}: the built transaction needs other signers {sorted(unknown)}")
    ttl = ctx.settings.intent_ttl_s
    claims = {"sub": wallet, "act": action, "msg": message_digest(message), "det": details or {}}
    return PreparedTransaction(
        action=action,
        transaction=b64(bytes(Transaction.new_unsigned(message))),
        intent=ctx.tokens.intent(claims, ttl),
        fee_payer=str(payer),
        signers=signers,
        expires_at=int(time.time()) + ttl,
        details=details or {},
    )


def prepared_digest(prepared: PreparedTransaction) -> str:
    """The message digest the prepared transaction's intent names."""
    return message_digest(Transaction.from_bytes(unb64(prepared.transaction, "transaction")).message)


def _program_errors(ctx: ApiContext) -> dict[Pubkey, ProgramErrors]:
    a = ctx.addresses
    return {a.registry: REGISTRY_ERRORS, a.energy_token: ENERGY_TOKEN_ERRORS, a.trading: TRADING_ERRORS,
            a.certificates: CERTIFICATES_ERRORS, a.payments: PAYMENTS_ERRORS}


def _failure_code(ctx: ApiContext, tx: Transaction, result: TxResult) -> tuple[str, str]:
    failure = result.failure
    assert failure is not None
    if failure.instruction_index is None:
        return failure.kind, f"the chain refused the transaction: {failure.kind}"
    ix = tx.message.instructions[failure.instruction_index]
    program = tx.message.account_keys[ix.program_id_index]
    table = _program_errors(ctx).get(program)
    name = table.name(failure) if table is not None else (failure.error or failure.kind)
    return name, f"the chain refused instruction {failure.instruction_index}: {name}"


async def submit(ctx: ApiContext, wallet: str, body: SignedTransaction) -> tuple[dict[str, Any], Submitted]:
    """Check and send; returns the intent's claims and what happened. Raises ApiError on any refusal."""
    claims = ctx.tokens.read_intent(body.intent)
    if claims.get("sub") != wallet:
        raise ApiError(403, "not_your_transaction", "this transaction was built for another wallet")
    raw = unb64(body.transaction, "transaction")
    if len(raw) > MAX_TRANSACTION_BYTES:
        raise ApiError(400, "bad_transaction", f"a transaction is at most {MAX_TRANSACTION_BYTES} bytes")
    try:
        tx = Transaction.from_bytes(raw)
    except ValueError:
        raise ApiError(400, "bad_transaction", "not a Solana wire transaction") from None
    message = tx.message
    if message_digest(message) != claims.get("msg"):
        raise ApiError(400, "transaction_changed", "the signed transaction is not the one this api built")
    message_bytes = bytes(message)
    keys = message.account_keys[: message.header.num_required_signatures]
    signatures = list(tx.signatures)
    payer = ctx.fee_payer.pubkey() if ctx.fee_payer is not None else None
    for i, key in enumerate(keys):
        if key == payer:
            continue
        if i >= len(signatures) or not signatures[i].verify(key, message_bytes):
            raise ApiError(400, "missing_signature", f"{key} has not signed this transaction")
    if payer is not None and ctx.fee_payer is not None:
        # Only now, after the user's signature checked out, does the backend sign: as fee payer.
        signatures[keys.index(payer)] = ctx.fee_payer.sign_message(message_bytes)
        tx = Transaction.populate(message, signatures)
    action = str(claims.get("act"))
    digest = str(claims.get("msg"))
    if action == ISSUE_ACTION:  # its certificate index stays held while the transaction may still land
        await certificate_requests.hold(ctx.storage, digest, now_ms() + IN_FLIGHT_S * 1000)
    try:
        result = await ctx.chain.send_signed_transaction(tx)
    except ChainError as exc:
        ctx.metrics.submitted.labels(action, "unavailable").inc()
        raise ApiError(503, "chain_unavailable", f"cannot reach the chain: {exc}") from None
    if action == ISSUE_ACTION and result.executed:  # landed, or refused for good: the index is free
        await certificate_requests.release(ctx.storage, digest)
    if result.failure is not None:
        ctx.metrics.submitted.labels(action, "refused").inc()
        code, text = _failure_code(ctx, tx, result)
        if code == "BlockhashNotFound":
            raise ApiError(409, "intent_expired", "the transaction's blockhash expired: ask for a new one")
        if not result.executed:
            # Refused before it ran (a fee payer without SOL, a replay, …): nothing happened on chain.
            raise ApiError(422, code, f"the chain refused the transaction before running it: {code} "
                                      "(nothing happened on chain, no fee was paid)",
                           signature=str(result.signature), executed=False)
        raise ApiError(422, code, text, signature=str(result.signature), executed=True,
                       logs=list(result.logs[-12:]))
    ctx.metrics.submitted.labels(action, "ok").inc()
    return claims, Submitted(action=action, signature=str(result.signature), compute_units=result.compute_units,
                             details=dict(claims.get("det") or {}))


async def wait_indexed(ctx: ApiContext, signature: str) -> bool:
    """True once the indexer has applied ``signature`` (its apply-once record exists), False after
    ``index_wait_s``. Polls the database: the indexer may be another process."""
    if ctx.on_submitted is not None:
        ctx.on_submitted(signature)
    deadline = time.monotonic() + ctx.settings.index_wait_s
    delay = 0.01
    while True:
        if await events.transaction_applied(ctx.storage, signature):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 2, 0.2)
