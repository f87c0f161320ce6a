"""A JSON-RPC endpoint backed by LiteSVM: the subset of the Solana RPC API that :class:`RpcChain` uses.

It lets the RPC path (solana-py's AsyncClient → HTTP → a chain) run in tests and in the demo without a
validator, so the code that talks to a real cluster is the code that is tested. Slots advance on a timer
like a validator's; transactions are executed when sent (preflight failures are reported the way a
validator reports them: error -32002 with the simulation's logs and error).

    async with LiteSVMRpcServer() as server:
        async with RpcChain(server.url) as chain:
            ...

Methods: getLatestBlockhash, sendTransaction (base64), getSignatureStatuses, getTransaction,
getAccountInfo (base64), getMultipleAccounts, getProgramAccounts (``dataSize`` / ``memcmp`` filters,
``withContext``), getSignaturesForAddress (newest first, ``before`` / ``until`` / ``limit``, with
``transactionIndex``), requestAirdrop, getMinimumBalanceForRentExemption, getSlot, getBlockHeight,
getHealth — the last three groups are what an auditor (``gridtokenx verify``) reads a cluster with.
HTTP/1.1 with Content-Length bodies only; it listens on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections import defaultdict
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from solders.account import Account
from solders.litesvm import LiteSVM
from solders.pubkey import Pubkey
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetLatestBlockhashResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetTransactionResp,
    RpcBlockhash,
    RpcConfirmedTransactionStatusWithSignature,
    RpcResponseContext,
    RpcSimulateTransactionResult,
)
from solders.signature import Signature
from solders.transaction import Transaction, VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    TransactionConfirmationStatus,
    TransactionStatus,
    UiTransactionStatusMeta,
)

from programs.client.chain import litesvm_executed

__all__ = ["LiteSVMRpcServer"]

_MAX_BODY = 1 << 20


@dataclass
class _Executed:
    slot: int
    tx: VersionedTransaction
    meta: TransactionMetadata
    err: Any


class LiteSVMRpcServer:
    """Serve ``svm`` (a fresh LiteSVM by default) over JSON-RPC until the context exits."""

    def __init__(self, svm: LiteSVM | None = None, *, slot_interval: float = 0.05) -> None:
        # A validator accepts any of its last 150 blockhashes, LiteSVM only the latest one; with several
        # transactions in flight that would fail at random, so the default chain does not check them.
        # The blockhash still changes after every transaction, so repeated instructions are new
        # transactions rather than AlreadyProcessed.
        self.svm = svm if svm is not None else LiteSVM().with_blockhash_check(False)
        self.slot_interval = slot_interval
        self._executed: dict[Signature, _Executed] = {}
        # Sent transactions in execution order, and per account key: getSignaturesForAddress.
        self._by_address: defaultdict[Pubkey, list[Signature]] = defaultdict(list)
        self._in_slot: defaultdict[int, list[Signature]] = defaultdict(list)
        self._server: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.url = ""

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._ticker = asyncio.create_task(self._tick(), name="litesvm-rpc-slots")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.slot_interval)
            self.svm.warp_to_slot(self._slot() + 1)

    def _slot(self) -> int:
        return int(self.svm.get_clock().slot)

    # -- HTTP ---------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request_line = await reader.readline()
                if not request_line:
                    return
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length > _MAX_BODY:
                    return
                body = await reader.readexactly(length)
                payload = self._dispatch(body).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    def _dispatch(self, body: bytes) -> str:
        request_id: Any = None
        try:
            request = json.loads(body)
            request_id = request.get("id")
            handler = getattr(self, "_rpc_" + str(request["method"]), None)
            if handler is None:
                return _error(request_id, -32601, f"Method not found: {request['method']}")
            result: str = handler(request_id, request.get("params") or [])
            return result
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            return _error(request_id, -32602, f"Invalid params: {exc}")

    # -- methods ------------------------------------------------------------------------------------
    def _context(self) -> RpcResponseContext:
        return RpcResponseContext(self._slot())

    def _rpc_getHealth(self, rid: Any, params: list[Any]) -> str:
        return _result(rid, "ok")

    def _rpc_getSlot(self, rid: Any, params: list[Any]) -> str:
        return _result(rid, self._slot())

    def _rpc_getBlockHeight(self, rid: Any, params: list[Any]) -> str:
        return _result(rid, self._slot())

    def _rpc_getLatestBlockhash(self, rid: Any, params: list[Any]) -> str:
        value = RpcBlockhash(self.svm.latest_blockhash(), self._slot() + 150)
        return _with_id(GetLatestBlockhashResp(value, self._context()).to_json(), rid)

    def _rpc_getMinimumBalanceForRentExemption(self, rid: Any, params: list[Any]) -> str:
        return _result(rid, self.svm.minimum_balance_for_rent_exemption(int(params[0])))

    def _rpc_getAccountInfo(self, rid: Any, params: list[Any]) -> str:
        account = self.svm.get_account(Pubkey.from_string(params[0]))
        if account is not None and account.lamports == 0 and not account.data:
            account = None
        return _with_id(GetAccountInfoResp(account, self._context()).to_json(), rid)

    def _rpc_requestAirdrop(self, rid: Any, params: list[Any]) -> str:
        outcome = self.svm.airdrop(Pubkey.from_string(params[0]), int(params[1]))
        if isinstance(outcome, FailedTransactionMetadata):
            return _error(rid, -32600, f"airdrop failed: {outcome.err()}")
        self._executed[outcome.signature()] = _Executed(self._slot(), _placeholder_tx(), outcome, None)
        return _result(rid, str(outcome.signature()))

    def _rpc_sendTransaction(self, rid: Any, params: list[Any]) -> str:
        options = params[1] if len(params) > 1 else {}
        if options.get("encoding", "base58") != "base64":
            return _error(rid, -32602, "only base64 transactions are supported")
        raw = base64.b64decode(params[0])
        tx = VersionedTransaction.from_bytes(raw)
        outcome = self.svm.send_transaction(tx)
        self.svm.expire_blockhash()
        if isinstance(outcome, FailedTransactionMetadata):
            meta, err = outcome.meta(), outcome.err()
            # Refused before it ran (fee payer without SOL, a replay …): LiteSVM recorded nothing and
            # reports a placeholder signature, so it is refused even without preflight.
            if not options.get("skipPreflight", False) or not litesvm_executed(tx, outcome):
                sim = RpcSimulateTransactionResult(err=err, logs=list(meta.logs()),
                                                   units_consumed=meta.compute_units_consumed())
                data = json.loads(sim.to_json())
                return _error(rid, -32002, f"Transaction simulation failed: {err}", data)
        else:
            meta, err = outcome, None
        signature = meta.signature()
        self._executed[signature] = _Executed(self._slot(), tx, meta, err)
        self._in_slot[self._slot()].append(signature)
        for key in dict.fromkeys(tx.message.account_keys):
            self._by_address[key].append(signature)
        return _result(rid, str(signature))

    def _rpc_getSignatureStatuses(self, rid: Any, params: list[Any]) -> str:
        statuses = []
        for text in params[0]:
            done = self._executed.get(Signature.from_string(text))
            statuses.append(None if done is None else TransactionStatus(
                done.slot, None, None, done.err, TransactionConfirmationStatus.Finalized))
        return _with_id(GetSignatureStatusesResp(statuses, self._context()).to_json(), rid)

    def _rpc_getTransaction(self, rid: Any, params: list[Any]) -> str:
        done = self._executed.get(Signature.from_string(params[0]))
        if done is None:
            return _result(rid, None)
        meta = UiTransactionStatusMeta(
            done.err, done.meta.fee(), [], [], log_messages=list(done.meta.logs()),
            compute_units_consumed=done.meta.compute_units_consumed(),
        )
        tx = EncodedTransactionWithStatusMeta(done.tx, meta, None)
        return _with_id(GetTransactionResp(EncodedConfirmedTransactionWithStatusMeta(done.slot, tx)).to_json(), rid)

    def _rpc_getSignaturesForAddress(self, rid: Any, params: list[Any]) -> str:
        options = params[1] if len(params) > 1 and params[1] else {}
        limit = min(int(options.get("limit") or 1000), 1000)
        before, until = options.get("before"), options.get("until")
        found: list[RpcConfirmedTransactionStatusWithSignature] = []
        started = before is None
        for signature in reversed(self._by_address.get(Pubkey.from_string(params[0]), [])):
            if not started:
                started = str(signature) == before
                continue
            if str(signature) == until or len(found) >= limit:
                break
            done = self._executed[signature]
            found.append(RpcConfirmedTransactionStatusWithSignature(
                signature, done.slot, done.err, None, None, TransactionConfirmationStatus.Finalized,
                self._in_slot[done.slot].index(signature)))
        return _with_id(GetSignaturesForAddressResp(found).to_json(), rid)

    def _rpc_getProgramAccounts(self, rid: Any, params: list[Any]) -> str:
        options = params[1] if len(params) > 1 and params[1] else {}
        if options.get("encoding", "base64") != "base64":
            return _error(rid, -32602, "only base64 account data is supported")
        filters = options.get("filters") or []
        value = [{"pubkey": str(address), "account": _ui_account(account)}
                 for address, account in self.svm.get_program_accounts(Pubkey.from_string(params[0]))
                 if all(_matches(bytes(account.data), f) for f in filters)]
        if options.get("withContext"):
            return _result(rid, {"context": {"slot": self._slot()}, "value": value})
        return _result(rid, value)

    def _rpc_getMultipleAccounts(self, rid: Any, params: list[Any]) -> str:
        value = []
        for text in params[0]:
            account = self.svm.get_account(Pubkey.from_string(text))
            live = account is not None and (account.lamports > 0 or bool(account.data))
            value.append(_ui_account(account) if live and account is not None else None)
        return _result(rid, {"context": {"slot": self._slot()}, "value": value})


def _ui_account(account: Account) -> dict[str, Any]:
    return {"lamports": account.lamports, "data": [base64.b64encode(bytes(account.data)).decode(), "base64"],
            "owner": str(account.owner), "executable": account.executable, "rentEpoch": account.rent_epoch,
            "space": len(account.data)}


def _matches(data: bytes, rule: dict[str, Any]) -> bool:
    """One getProgramAccounts filter: ``{"dataSize": n}`` or ``{"memcmp": {"offset": o, "bytes": base58}}``."""
    if "dataSize" in rule:
        return len(data) == int(rule["dataSize"])
    memcmp = rule["memcmp"]
    offset = int(memcmp["offset"])
    wanted = (base64.b64decode(memcmp["bytes"]) if memcmp.get("encoding") == "base64"
              else _b58decode(memcmp["bytes"]))
    return data[offset:offset + len(wanted)] == wanted


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


def _placeholder_tx() -> VersionedTransaction:
    # Airdrops are not transactions the caller built; getTransaction still needs something to return.
    return VersionedTransaction.from_legacy(Transaction.default())


def _result(rid: Any, value: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "result": value, "id": rid})


def _error(rid: Any, code: int, message: str, data: Any = None) -> str:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return json.dumps({"jsonrpc": "2.0", "error": error, "id": rid})


def _with_id(response_json: str, rid: Any) -> str:
    response = json.loads(response_json)
    response["id"] = rid
    return json.dumps(response)

