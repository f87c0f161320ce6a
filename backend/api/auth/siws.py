"""Sign-In With Solana messages: the text a wallet signs, built and parsed the same way.

The layout is the one Phantom, Solflare and Backpack produce for the Wallet Standard ``solana:signIn``
feature (and EIP-4361 before it)::

    localhost:8080 wants you to sign in with your Solana account:
    <base58 address>

    <statement>

    URI: http://localhost:8080
    Version: 1
    Chain ID: localnet
    Nonce: <nonce>
    Issued At: 2025-01-01T00:00:00Z
    Expiration Time: 2025-01-01T00:05:00Z

Only the fields we issue are accepted; an unknown line is refused rather than ignored, so nothing a
wallet shows the user can differ from what the server checked.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from solders.pubkey import Pubkey
from solders.signature import Signature

__all__ = ["SiwsError", "SiwsMessage", "check_wallet", "parse_timestamp", "verify_signature"]

_HEADER = " wants you to sign in with your Solana account:"
_FIELDS = (
    ("uri", "URI"),
    ("version", "Version"),
    ("chain_id", "Chain ID"),
    ("nonce", "Nonce"),
    ("issued_at", "Issued At"),
    ("expiration_time", "Expiration Time"),
)
_NONCE = re.compile(r"^[A-Za-z0-9]{8,64}$")
MAX_MESSAGE_BYTES = 2048


class SiwsError(ValueError):
    """A sign-in refused; ``code`` is the API's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_wallet(address: str) -> Pubkey:
    """A wallet address: base58 of exactly 32 bytes (design 1.2)."""
    try:
        return Pubkey.from_string(address)
    except ValueError:
        raise SiwsError("bad_wallet", f"wallet address {address[:60]!r} is not base58 of 32 bytes") from None


def format_timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_timestamp(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SiwsError("bad_message", f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise SiwsError("bad_message", f"{text!r} has no time zone")
    return moment


@dataclass(frozen=True)
class SiwsMessage:
    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: str
    nonce: str
    issued_at: str
    expiration_time: str

    def text(self) -> str:
        lines = [f"{self.domain}{_HEADER}", self.address]
        if self.statement:
            lines += ["", self.statement]
        lines.append("")
        lines += [f"{label}: {getattr(self, name)}" for name, label in _FIELDS]
        return "\n".join(lines)

    @classmethod
    def parse(cls, text: str) -> SiwsMessage:
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise SiwsError("bad_message", f"sign-in message longer than {MAX_MESSAGE_BYTES} bytes")
        lines = text.split("\n")
        if len(lines) < 3 or not lines[0].endswith(_HEADER):
            raise SiwsError("bad_message", "not a Sign-In With Solana message (first line)")
        domain, address = lines[0][: -len(_HEADER)], lines[1]
        rest = lines[2:]
        if not rest or rest[0] != "":
            raise SiwsError("bad_message", "a blank line must follow the address")
        rest = rest[1:]
        statement = None
        if rest and not rest[0].startswith("URI: "):
            statement = rest[0]
            if len(rest) < 2 or rest[1] != "":
                raise SiwsError("bad_message", "a blank line must follow the statement")
            rest = rest[2:]
        values: dict[str, str] = {}
        labels = {label: name for name, label in _FIELDS}
        for line in rest:
            label, sep, value = line.partition(": ")
            if not sep or label not in labels:
                raise SiwsError("bad_message", f"unexpected line in sign-in message: {line[:80]!r}")
            if labels[label] in values:
                raise SiwsError("bad_message", f"{label} appears twice")
            values[labels[label]] = value
        missing = [label for name, label in _FIELDS if name not in values]
        if missing:
            raise SiwsError("bad_message", f"sign-in message lacks {', '.join(missing)}")
        if [labels[line.partition(": ")[0]] for line in rest] != [name for name, _ in _FIELDS]:
            raise SiwsError("bad_message", "sign-in message fields out of order")
        if not _NONCE.match(values["nonce"]):
            raise SiwsError("bad_message", "nonce must be 8 to 64 letters and digits")
        return cls(domain=domain, address=address, statement=statement, **values)


def verify_signature(wallet: Pubkey, message: bytes, signature: bytes) -> None:
    """Ed25519: ``signature`` over ``message`` by ``wallet``'s key, else SiwsError(bad_signature)."""
    if len(signature) != 64 or not Signature.from_bytes(signature).verify(wallet, message):
        raise SiwsError("bad_signature", "the signature is not the wallet's over this message")
