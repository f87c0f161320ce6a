"""``gridtokenx wallet``: a keypair-file wallet for scripts and the demo. It talks only to the api over
HTTP and signs locally: the key never leaves this machine, and it signs only a transaction the api
built for this wallet (it checks its key is a required signer, and shows what it signs with -v).

    gridtokenx wallet new [--keypair FILE]
    gridtokenx wallet address
    gridtokenx wallet login URL                  # Sign-In With Solana; the session is kept next to the key
    gridtokenx wallet register NAME --kind prosumer|consumer
    gridtokenx wallet balance
    gridtokenx wallet orders [--book]
    gridtokenx wallet sell KWH --price THBC_PER_KWH [--expires SECONDS]
    gridtokenx wallet buy ORDER [KWH]
    gridtokenx wallet cancel ORDER
    gridtokenx wallet certificates [list | request METER TO_WH | retire CERT | transfer CERT WALLET]
    gridtokenx wallet certificates validate CERT | revoke CERT REASON      # certificate governance
    gridtokenx wallet redeem THBC [--payout REFERENCE]
    gridtokenx wallet meters [list | register METER --public-key HEX | activate METER | suspend METER]
    gridtokenx wallet issue WALLET THBC --reference DEPOSIT     # the payment operator

``meters activate``/``suspend`` and ``issue`` are for the operator's wallets (the registry authority, the
payments program's operator); the api refuses them to anyone else.

The keypair file is the Solana CLI's format (JSON array of 64 bytes), mode 0600; default
~/.config/gridtokenx/wallet.json (env GRIDTOKENX_WALLET).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gridtokenx.keyfile import KeyfileError, load_keypair_file, write_keypair_file

__all__ = ["add_arguments", "run"]

KWH = 10**9
THBC = 10**6
DEFAULT_KEYPAIR = Path(os.environ.get("GRIDTOKENX_WALLET", Path.home() / ".config/gridtokenx/wallet.json"))


class WalletError(Exception):
    pass


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keypair", type=Path, default=DEFAULT_KEYPAIR, help="keypair file (0600)")
    parser.add_argument("--json", action="store_true", help="print the api's answers as JSON")
    sub = parser.add_subparsers(dest="wallet_command", metavar="ACTION", required=True)
    sub.add_parser("new", help="create a keypair file")
    sub.add_parser("address", help="print the wallet address")
    login = sub.add_parser("login", help="sign in to an api (Sign-In With Solana)")
    login.add_argument("url")
    reg = sub.add_parser("register", help="register this wallet (a transaction this wallet signs)")
    reg.add_argument("name")
    reg.add_argument("--kind", choices=["prosumer", "consumer"], required=True)
    sub.add_parser("balance", help="GRID and THBC held and in escrow")
    orders = sub.add_parser("orders", help="my orders (or --book: the order book)")
    orders.add_argument("--book", action="store_true")
    sell = sub.add_parser("sell", help="offer GRID for sale")
    sell.add_argument("kwh")
    sell.add_argument("--price", required=True, help="THBC per kWh")
    sell.add_argument("--expires", type=int, default=3600, help="seconds (default 3600)")
    buy = sub.add_parser("buy", help="buy an order, all of it or KWH")
    buy.add_argument("order")
    buy.add_argument("kwh", nargs="?")
    cancel = sub.add_parser("cancel", help="cancel my order")
    cancel.add_argument("order")
    certs = sub.add_parser("certificates",
                           help="list, request, retire or transfer certificates; governance: validate or revoke")
    certs.add_argument("what", nargs="*", help="list | request METER TO_WH | retire CERT | transfer CERT WALLET | "
                                               "validate CERT | revoke CERT REASON")
    redeem = sub.add_parser("redeem", help="redeem THBC for baht (the payments program burns it)")
    redeem.add_argument("thbc")
    redeem.add_argument("--payout", help="the payout reference to record on chain (default: the api makes one)")
    meters = sub.add_parser("meters", help="list my meters, register one (prosumers), activate or suspend (operator)")
    meters.add_argument("what", nargs="*", help="list | register METER | activate METER | suspend METER")
    meters.add_argument("--public-key", help="register: the gateway's Ed25519 public key (`gateway keygen`), hex")
    issue = sub.add_parser("issue", help="payment operator: issue THBC to WALLET against a deposit reference")
    issue.add_argument("wallet")
    issue.add_argument("thbc")
    issue.add_argument("--reference", required=True, help="the bank deposit reference (each is issued once)")


def _units(text: str, scale: int, what: str) -> int:
    try:
        value = Decimal(text) * scale
    except InvalidOperation:
        raise WalletError(f"{what} {text!r} is not a number") from None
    if value != value.to_integral_value() or value < 0:
        raise WalletError(f"{what} {text!r} has more decimals than the token has")
    return int(value)


class Session:
    def __init__(self, keypair_path: Path) -> None:
        self.keypair_path = keypair_path
        self.session_path = keypair_path.with_name(keypair_path.name + ".session")
        self._key: Any = None

    @property
    def key(self) -> Any:
        if self._key is None:
            self._key = load_keypair_file(self.keypair_path)
        return self._key

    def saved(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.session_path.read_text())
        except (OSError, ValueError):
            raise WalletError("not signed in: gridtokenx wallet login URL") from None
        return data

    def save(self, url: str, token: str) -> None:
        fd = os.open(self.session_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"url": url, "token": token}, out)

    def client(self, url: str | None = None, token: str | None = None) -> Any:
        import httpx

        if url is None:
            saved = self.saved()
            url, token = saved["url"], saved["token"]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=url, headers=headers, timeout=30)


def _answer(reply: Any) -> Any:
    try:
        body = reply.json()
    except ValueError:
        raise WalletError(f"HTTP {reply.status_code}: {reply.text[:200]}") from None
    if reply.status_code >= 400:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        raise WalletError(f"{error.get('code', reply.status_code)}: {error.get('message', reply.text[:200])}")
    return body


def _sign(key: Any, prepared: dict[str, Any]) -> str:
    from solders.transaction import Transaction

    tx = Transaction.from_bytes(base64.b64decode(prepared["transaction"]))
    message = tx.message
    signers = list(message.account_keys[: message.header.num_required_signatures])
    if key.pubkey() not in signers:
        raise WalletError("the api sent a transaction this wallet is not asked to sign; not signing")
    signatures = list(tx.signatures)
    signatures[signers.index(key.pubkey())] = key.sign_message(bytes(message))
    return base64.b64encode(bytes(Transaction.populate(message, signatures))).decode()


def _transact(session: Session, method: str, path: str, body: Any = None) -> dict[str, Any]:
    with session.client() as http:
        prepared = _answer(http.request(method, path, json=body))
        done: dict[str, Any] = _answer(http.post("/transactions", json={
            "intent": prepared["intent"], "transaction": _sign(session.key, prepared)}))
    return done


def _print(args: argparse.Namespace, value: Any, text: str) -> None:
    print(json.dumps(value, indent=2) if args.json else text)


def _orders_text(items: list[dict[str, Any]]) -> str:
    lines = [f"{'order':<44} {'state':<16} {'remaining kWh':>14} {'THBC/kWh':>9}"]
    for o in items:
        lines.append(f"{o['address']:<44} {o['state']:<16} {o['remaining'] / KWH:>14.3f} {o['price'] / THBC:>9.2f}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    session = Session(args.keypair)
    cmd = args.wallet_command
    if cmd == "new":
        from solders.keypair import Keypair

        key = Keypair()
        write_keypair_file(args.keypair, key)
        print(f"{key.pubkey()}  (keypair in {args.keypair}, mode 0600)")
        return 0
    if cmd == "address":
        print(session.key.pubkey())
        return 0
    if cmd == "login":
        url = args.url.rstrip("/")
        with session.client(url) as http:
            challenge = _answer(http.post("/auth/nonce", json={"address": str(session.key.pubkey())}))
            message = challenge["message"]
            signature = session.key.sign_message(message.encode())
            signed_in = _answer(http.post("/auth/login", json={"message": message, "signature": str(signature)}))
        session.save(url, signed_in["token"])
        _print(args, signed_in, f"signed in to {url} as {signed_in['wallet']}"
                                + (" (operator)" if signed_in["operator"] else ""))
        return 0
    if cmd == "register":
        done = _transact(session, "POST", "/users", {"name": args.name, "kind": args.kind})
        _print(args, done, f"registered as {args.kind} {args.name!r}: {done['signature']}")
        return 0
    if cmd == "balance":
        with session.client() as http:
            me = _answer(http.get("/users/me"))
        b = me["balances"]
        _print(args, me, f"GRID {b['grid'] / KWH:.9f} kWh (+{b['grid_in_escrow'] / KWH:.9f} in open orders)\n"
                         f"THBC {b['thbc'] / THBC:.6f}")
        return 0
    if cmd == "orders":
        with session.client() as http:
            page = _answer(http.get("/orders/book" if args.book else "/orders/mine"))
        _print(args, page, _orders_text(page["items"]))
        return 0
    if cmd == "sell":
        body = {"amount": _units(args.kwh, KWH, "kWh"), "price": _units(args.price, THBC, "price"),
                "expires_in": args.expires}
        done = _transact(session, "POST", "/orders", body)
        _print(args, done, f"order {done['details']['order']} offers {args.kwh} kWh at {args.price} THBC/kWh: "
                           f"{done['signature']}")
        return 0
    if cmd == "buy":
        body = {} if args.kwh is None else {"amount": _units(args.kwh, KWH, "kWh")}
        done = _transact(session, "POST", f"/orders/{args.order}/buy", body)
        d = done["details"]
        _print(args, done, f"bought {d['amount'] / KWH:.9f} kWh for {d['cost'] / THBC:.6f} THBC: {done['signature']}")
        return 0
    if cmd == "cancel":
        done = _transact(session, "POST", f"/orders/{args.order}/cancel")
        _print(args, done, f"cancelled {args.order}: {done['signature']}")
        return 0
    if cmd == "certificates":
        what = args.what or ["list"]
        if what[0] == "list" and len(what) == 1:
            with session.client() as http:
                me = _answer(http.get("/auth/me"))
                page = _answer(http.get("/certificates", params={"holder": me["wallet"]}))
            lines = [f"{c['address']}  {c['meter_id']}  {c['from_wh']}-{c['to_wh']} Wh  {c['state']}"
                     for c in page["items"]]
            _print(args, page, "\n".join(lines) or "no certificates")
            return 0
        if what[0] == "request" and len(what) == 3:
            done = _transact(session, "POST", "/certificates", {"meter_id": what[1], "to_wh": int(what[2])})
        elif what[0] == "retire" and len(what) == 2:
            done = _transact(session, "POST", f"/certificates/{what[1]}/retire")
        elif what[0] == "transfer" and len(what) == 3:
            done = _transact(session, "POST", f"/certificates/{what[1]}/transfer", {"to": what[2]})
        elif what[0] == "validate" and len(what) == 2:
            done = _transact(session, "POST", f"/certificates/{what[1]}/validate")
        elif what[0] == "revoke" and len(what) == 3:
            done = _transact(session, "POST", f"/certificates/{what[1]}/revoke", {"reason": what[2]})
        else:
            raise WalletError("certificates: list | request METER TO_WH | retire CERT | transfer CERT WALLET | "
                              "validate CERT | revoke CERT REASON")
        _print(args, done, f"{done['action']}: {done['signature']}")
        return 0
    if cmd == "redeem":
        request: dict[str, Any] = {"amount": _units(args.thbc, THBC, "THBC")}
        if args.payout is not None:
            request["payout_reference"] = args.payout
        done = _transact(session, "POST", "/payments/redeem", request)
        _print(args, done, f"redeemed {args.thbc} THBC (burned), payout {done['details']['payout_reference']}: "
                           f"{done['signature']}")
        return 0
    if cmd == "meters":
        return _meters(args, session)
    if cmd == "issue":
        done = _transact(session, "POST", "/payments/issue", {
            "wallet": args.wallet, "amount": _units(args.thbc, THBC, "THBC"), "reference": args.reference})
        _print(args, done, f"issued {args.thbc} THBC to {args.wallet} against {args.reference}: {done['signature']}")
        return 0
    raise WalletError(f"unknown action {cmd}")


def _meters(args: argparse.Namespace, session: Session) -> int:
    what = args.what or ["list"]
    if what == ["list"]:
        with session.client() as http:
            me = _answer(http.get("/auth/me"))
            page = _answer(http.get("/meters", params={"owner": me["wallet"]}))
        lines = [f"{m['meter_id']:<16} {m['status']:<14} {m['minted'] / KWH:.9f} kWh minted" for m in page["items"]]
        _print(args, page, "\n".join(lines) or "no meters")
        return 0
    if what[0] == "register" and len(what) == 2:
        if not args.public_key:
            raise WalletError("meters register METER --public-key HEX (the gateway's key, from `gateway keygen`)")
        done = _transact(session, "POST", "/meters", {"meter_id": what[1], "public_key": args.public_key})
    elif what[0] in ("activate", "suspend") and len(what) == 2:
        done = _transact(session, "POST", f"/meters/{what[1]}/{what[0]}")
    else:
        raise WalletError("meters: list | register METER --public-key HEX | activate METER | suspend METER")
    if what[0] == "register":
        _print(args, done, f"meter {what[1]} registered (pending until an operator activates it): {done['signature']}")
    else:
        _print(args, done, f"{done['action']} {what[1]}: {done['signature']}")
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (WalletError, KeyfileError) as exc:
        print(f"gridtokenx wallet: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import httpx

        if isinstance(exc, httpx.HTTPError):  # connection refused, timeout: say so, no traceback
            print(f"gridtokenx wallet: cannot reach the api: {exc}", file=sys.stderr)
            return 1
        raise
