"""Reading a chain: its transactions and accounts, through the public JSON-RPC API only.

The methods used are Solana's standard ones, so the audit runs against any cluster or RPC provider as
well as the project's localnet: ``getSignaturesForAddress`` (paginated with ``before``),
``getTransaction`` (``base64``, ``maxSupportedTransactionVersion: 0``), ``getProgramAccounts`` and
``getMultipleAccounts`` (``base64``, with their context slot). Plain HTTP/1.1 with keep-alive from the
standard library: the auditor needs no client library it would have to trust.
"""

from __future__ import annotations

import base64
import http.client
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

__all__ = ["AccountRecord", "ChainReadError", "ChainSource", "ChainTransaction", "Instruction", "RpcSource",
           "SignatureInfo"]


class ChainReadError(Exception):
    """The chain could not be read; the message says which call failed and why."""


@dataclass(frozen=True)
class SignatureInfo:
    signature: str
    slot: int
    index: int | None  # position in its block, when the RPC says (transactionIndex)
    failed: bool


@dataclass(frozen=True)
class Instruction:
    program: Pubkey
    data: bytes
    accounts: tuple[Pubkey, ...]


@dataclass(frozen=True)
class ChainTransaction:
    signature: str
    slot: int
    instructions: tuple[Instruction, ...]
    logs: tuple[str, ...]
    failed: bool


@dataclass(frozen=True)
class AccountRecord:
    address: Pubkey
    owner: Pubkey
    lamports: int
    data: bytes


class ChainSource(Protocol):
    description: str

    def signatures(self, address: Pubkey) -> list[SignatureInfo]:
        """Every transaction that named ``address``, newest first."""
        ...

    def transaction(self, signature: str) -> ChainTransaction | None: ...

    def program_accounts(self, program: Pubkey) -> tuple[int, list[AccountRecord]]:
        """(context slot, every account ``program`` owns)."""
        ...

    def accounts(self, addresses: list[Pubkey]) -> tuple[int, list[AccountRecord | None]]:
        """(context slot, the accounts, None where none exists)."""
        ...

    def close(self) -> None: ...


class RpcSource:
    """A cluster (or the project's localnet) through JSON-RPC at ``url``."""

    PAGE = 1000

    def __init__(self, url: str, *, commitment: str = "confirmed", timeout: float = 30.0, retries: int = 3) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ChainReadError(f"{url!r} is not an http(s):// JSON-RPC URL")
        self.description = url
        self.commitment = commitment
        self._parts = parts
        self._timeout = timeout
        self._retries = retries
        self._conn: http.client.HTTPConnection | None = None
        self._id = 0

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            self._conn = cls(self._parts.hostname or "", self._parts.port, timeout=self._timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def call(self, method: str, params: list[Any]) -> Any:
        self._id += 1
        body = json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}).encode()
        path = self._parts.path or "/"
        for attempt in range(self._retries + 1):
            try:
                conn = self._connection()
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                if response.status == 429 or response.status >= 500:
                    raise ChainReadError(f"HTTP {response.status}")
                break
            except (OSError, http.client.HTTPException, ChainReadError) as exc:
                self.close()
                if attempt == self._retries:
                    raise ChainReadError(f"{self.description}: {method} failed: {exc}") from exc
                time.sleep(0.2 * 2**attempt)
        try:
            answer = json.loads(payload)
        except ValueError as exc:
            raise ChainReadError(f"{self.description}: {method} answered no JSON: {exc}") from exc
        if "error" in answer:
            raise ChainReadError(f"{self.description}: {method}: {answer['error'].get('message', answer['error'])}")
        return answer.get("result")

    def signatures(self, address: Pubkey) -> list[SignatureInfo]:
        out: list[SignatureInfo] = []
        before: str | None = None
        while True:
            options: dict[str, Any] = {"limit": self.PAGE, "commitment": self.commitment}
            if before is not None:
                options["before"] = before
            page = self.call("getSignaturesForAddress", [str(address), options]) or []
            out.extend(SignatureInfo(p["signature"], int(p["slot"]), p.get("transactionIndex"),
                                     p.get("err") is not None) for p in page)
            if len(page) < self.PAGE:
                return out
            before = page[-1]["signature"]

    def transaction(self, signature: str) -> ChainTransaction | None:
        found = self.call("getTransaction", [signature, {"encoding": "base64", "commitment": self.commitment,
                                                         "maxSupportedTransactionVersion": 0}])
        if found is None:
            return None
        raw, encoding = found["transaction"]
        if encoding != "base64":
            raise ChainReadError(f"getTransaction {signature}: {encoding} encoding, asked for base64")
        tx = VersionedTransaction.from_bytes(base64.b64decode(raw))
        meta = found.get("meta") or {}
        keys = list(tx.message.account_keys)
        loaded = meta.get("loadedAddresses") or {}
        keys += [Pubkey.from_string(k) for k in loaded.get("writable", []) + loaded.get("readonly", [])]
        instructions = tuple(
            Instruction(keys[ix.program_id_index], bytes(ix.data), tuple(keys[i] for i in bytes(ix.accounts)))
            for ix in tx.message.instructions)
        return ChainTransaction(signature, int(found["slot"]), instructions, tuple(meta.get("logMessages") or ()),
                                meta.get("err") is not None)

    def program_accounts(self, program: Pubkey) -> tuple[int, list[AccountRecord]]:
        found = self.call("getProgramAccounts", [str(program), {"encoding": "base64", "withContext": True,
                                                                "commitment": self.commitment}])
        if isinstance(found, dict):
            slot, items = int(found["context"]["slot"]), found["value"]
        else:  # an RPC that ignores withContext
            slot, items = -1, found
        return slot, [_record(Pubkey.from_string(item["pubkey"]), item["account"]) for item in items]

    def accounts(self, addresses: list[Pubkey]) -> tuple[int, list[AccountRecord | None]]:
        slot, out = -1, []
        for at in range(0, len(addresses), 100):  # getMultipleAccounts takes at most 100 keys
            chunk = addresses[at:at + 100]
            found = self.call("getMultipleAccounts", [[str(a) for a in chunk], {"encoding": "base64",
                                                                                  "commitment": self.commitment}])
            slot = max(slot, int(found["context"]["slot"]))
            out += [None if item is None else _record(a, item) for a, item in zip(chunk, found["value"], strict=True)]
        return slot, out


def _record(address: Pubkey, item: dict[str, Any]) -> AccountRecord:
    raw, encoding = item["data"]
    if encoding != "base64":
        raise ChainReadError(f"account {address}: {encoding} data, asked for base64")
    return AccountRecord(address, Pubkey.from_string(item["owner"]), int(item["lamports"]), base64.b64decode(raw))
