"""The demo's people: prosumers, consumers and operators, each acting only through ``gridtokenx wallet`` (a
keypair file of their own, signed in to the api, signing every transaction locally).

- the solar family owns house-main and pv-inverter (gateway gw-house), the landlord flat-1 and flat-2
  (gw-flats): they register, register their meters, sell surplus, cancel, let an offer expire, and the solar
  family has a certificate issued for part of its settled generation, validated and retired;
- Alice and Bob are consumers: THBC is issued to them against bank deposit references, they buy part of an
  order, the rest of it, all of another, and Alice redeems some THBC;
- the grid operator (the registry authority and certificates governance) activates meters and validates the
  certificate; the payment gateway (the payments program's operator) issues THBC.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo.site import Site
from demo.stack import DemoError

__all__ = ["Market", "Story", "Wallet"]

KWH = 10**9
THBC = 10**6
PRICE = "3.50"  # THBC per kWh


class Wallet:
    """One person's ``gridtokenx wallet``: a keypair file in the demo's directory, the api's session beside it."""

    def __init__(self, name: str, keypair: Path) -> None:
        self.name = name
        self.keypair = keypair
        self.address = ""

    async def _run(self, *args: str, as_json: bool = True) -> Any:
        env = {**os.environ, "GRIDTOKENX_LOG_LEVEL": "WARNING"}
        argv = [sys.executable, "-m", "gridtokenx", "wallet", "--keypair", str(self.keypair),
                *(["--json"] if as_json else []), *args]
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await proc.communicate()
        if proc.returncode != 0:
            raise DemoError(f"{self.name}: gridtokenx wallet {' '.join(args)}: {err.decode().strip()}")
        return json.loads(out) if as_json else out.decode().strip()

    async def create(self) -> None:
        if not self.keypair.exists():
            await self._run("new", as_json=False)
        self.address = str(await self._run("address", as_json=False))

    async def login(self, url: str) -> None:
        await self._run("login", url)

    async def __call__(self, *args: str) -> Any:
        return await self._run(*args)


@dataclass
class Story:
    """What happened, for the summary (and for the tests)."""

    orders: dict[str, str] = field(default_factory=dict)  # label -> order address
    trades: int = 0
    deposits: list[str] = field(default_factory=list)
    certificate: str | None = None
    redeemed_thbc: int = 0
    steps: list[str] = field(default_factory=list)


class Market:
    def __init__(self, site: Site, workdir: Path, started: float) -> None:
        self.site = site
        self.api = site.backend.api_url
        self.started = started
        wallets = workdir / "wallets"
        wallets.mkdir(exist_ok=True, mode=0o700)
        self.solar = Wallet("solar family", wallets / "solar-family.json")
        self.landlord = Wallet("landlord", wallets / "landlord.json")
        self.alice = Wallet("Alice", wallets / "alice.json")
        self.bob = Wallet("Bob", wallets / "bob.json")
        self.operator = Wallet("grid operator", site.backend.admin_key)
        self.payments = Wallet("payment gateway", site.backend.payment_key)
        self.http = httpx.AsyncClient(base_url=self.api, timeout=30)
        self.story = Story()

    async def close(self) -> None:
        await self.http.aclose()

    def say(self, text: str) -> None:
        line = f"  [{time.monotonic() - self.started:5.1f} s] {text}"
        self.story.steps.append(text)
        print(line, flush=True)

    async def get(self, path: str, **params: Any) -> Any:
        reply = await self.http.get(path, params=params)
        return reply.json() if reply.status_code == 200 else None

    async def airdrop(self, address: str, lamports: int = 10**9) -> None:
        reply = await self.http.post(self.site.backend.rpc_url, json={
            "jsonrpc": "2.0", "id": 1, "method": "requestAirdrop", "params": [address, lamports]})
        if "error" in reply.json():
            raise DemoError(f"airdrop to {address} failed: {reply.json()['error']}")

    def _getter(self, path: str) -> Callable[[], Awaitable[Any]]:
        return lambda: self.get(path)

    async def until(self, what: str, check: Callable[[], Awaitable[Any]], within: float = 45.0,
                    step: float = 0.25) -> Any:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if (value := await check()) not in (None, False, 0):
                return value
            await asyncio.sleep(step)
        raise DemoError(f"timed out after {within:.0f} s waiting for {what}")

    # -- the story ----------------------------------------------------------------------------------

    async def people(self) -> None:
        everyone = [self.solar, self.landlord, self.alice, self.bob, self.operator, self.payments]
        await asyncio.gather(*(w.create() for w in everyone))
        # Rent for the accounts their transactions create (user, orders, certificates); the api's fee payer
        # pays the network fees. On the local chain SOL comes from its faucet, as on a test cluster.
        for wallet in everyone:
            await self.airdrop(wallet.address)
        await asyncio.gather(*(w.login(self.api) for w in everyone))
        await asyncio.gather(self.solar("register", "Solar family", "--kind", "prosumer"),
                             self.landlord("register", "Landlord", "--kind", "prosumer"),
                             self.alice("register", "Alice", "--kind", "consumer"),
                             self.bob("register", "Bob", "--kind", "consumer"))
        self.say("two prosumers and two consumers made wallets, signed in (Sign-In With Solana) and registered")

    async def meters(self) -> None:
        owners = {"house-main": self.solar, "pv-inverter": self.solar, "flat-1": self.landlord,
                  "flat-2": self.landlord}
        for wallet in (self.solar, self.landlord):
            await self.until(f"{wallet.name}'s registration to be indexed", self._getter(f"/users/{wallet.address}"))
        await asyncio.gather(*(owner("meters", "register", meter, "--public-key",
                                     self.site.gateway_keys[self.site.meter_gateway[meter]])
                               for meter, owner in owners.items()))
        for meter in owners:
            await self.until(f"meter {meter} to be indexed", self._getter(f"/meters/{meter}"))
        for meter in owners:  # one signer: its transactions one after another
            await self.operator("meters", "activate", meter)
        self.say("meters registered by their owners with their gateway's key, activated by the grid operator")

    async def thbc(self) -> None:
        for who, amount, reference in ((self.alice, "500", "KBANK-DEMO-0001"), (self.bob, "300", "SCB-DEMO-0002")):
            await self.payments("issue", who.address, amount, "--reference", reference)
            self.story.deposits.append(reference)
            self.say(f"payment gateway issues {amount} THBC to {who.name} against deposit {reference}")

    async def grid(self, wallet: Wallet, at_least: int) -> int:
        async def held() -> int:
            balance = await wallet("balance")
            grid: int = balance["balances"]["grid"]
            return grid if grid >= at_least else 0
        return int(await self.until(f"{wallet.name} to hold {at_least / KWH:.3f} GRID", held, within=60))

    async def sell(self, wallet: Wallet, label: str, base_units: int, expires: int = 3600) -> str:
        kwh = f"{base_units / KWH:.9f}"
        done = await wallet("sell", kwh, "--price", PRICE, "--expires", str(expires))
        order = str(done["details"]["order"])
        self.story.orders[label] = order
        await self.until(f"order {label} in the book", lambda: self.get(f"/orders/{order}"))
        self.say(f"{wallet.name} offers {base_units / KWH:.3f} kWh at {PRICE} THBC/kWh"
                 + (f", for {expires} s" if expires < 3600 else "") + f" (order {order[:8]}…)")
        return order

    async def state(self, order: str, wanted: str) -> None:
        async def reached() -> bool:
            found = await self.get(f"/orders/{order}")
            return found is not None and found.get("state") == wanted
        await self.until(f"order {order[:8]}… to be {wanted}", reached)

    async def buy(self, wallet: Wallet, label: str, base_units: int | None) -> None:
        order = self.story.orders[label]
        args = ["buy", order] + ([f"{base_units / KWH:.9f}"] if base_units is not None else [])
        done = await wallet(*args)
        self.story.trades += 1
        d = done["details"]
        self.say(f"{wallet.name} buys {d['amount'] / KWH:.3f} kWh of order {order[:8]}… for {d['cost'] / THBC:.6f} THBC"
                 + (" (the rest of it)" if base_units is None else ""))

    async def trade(self) -> None:
        solar_grid = await self.grid(self.solar, KWH // 100)
        landlord_grid = await self.grid(self.landlord, KWH // 100)
        self.say(f"GRID minted from signed readings: solar family {solar_grid / KWH:.3f}, landlord "
                 f"{landlord_grid / KWH:.3f} kWh")
        big = await self.sell(self.solar, "partly, then fully bought", solar_grid * 4 // 10)
        await self.sell(self.solar, "cancelled", solar_grid // 10)
        expiring = await self.sell(self.solar, "expired", solar_grid // 10, expires=3)
        await self.sell(self.landlord, "bought whole", landlord_grid // 2)
        await self.buy(self.alice, "partly, then fully bought", solar_grid * 4 // 10 // 3)
        await self.state(big, "PARTIALLY_FILLED")
        await self.buy(self.bob, "partly, then fully bought", None)
        await self.buy(self.alice, "bought whole", None)
        await self.solar("cancel", self.story.orders["cancelled"])
        self.say(f"the solar family cancels order {self.story.orders['cancelled'][:8]}…: its GRID back from escrow")
        await self.state(big, "FILLED")
        await self.state(self.story.orders["bought whole"], "FILLED")
        await self.state(self.story.orders["cancelled"], "CANCELLED")
        await self.state(expiring, "EXPIRED")
        self.say(f"order {expiring[:8]}… expired: the backend's crank sent ExpireOrder, the escrow went back")

    async def certificate(self) -> None:
        meter = await self.get("/meters/house-main")
        settled_wh = int(meter["minted"]) // 10**6 if meter else 0
        if settled_wh < 2:
            self.say("house-main has not settled enough generation for a certificate yet; skipped")
            return
        done = await self.solar("certificates", "request", "house-main", str(settled_wh // 2))
        certificate = str(done["details"]["certificate"])
        self.story.certificate = certificate

        async def state(wanted: str) -> bool:
            found = await self.get(f"/certificates/{certificate}")
            return found is not None and found.get("state") == wanted
        await self.until("the certificate to be indexed", lambda: state("PENDING"))
        self.say(f"the solar family has {settled_wh // 2} Wh of house-main's settled generation certified "
                 f"(certificate {certificate[:8]}…, pending)")
        await self.operator("certificates", "validate", certificate)
        await self.until("the certificate to be valid", lambda: state("VALID"))
        self.say("the grid operator validates it")
        await self.solar("certificates", "retire", certificate)
        await self.until("the certificate to be retired", lambda: state("RETIRED"))
        self.say("the solar family retires it: the claim is used, never to be certified again")

    async def redeem(self) -> None:
        await self.alice("redeem", "100")
        self.story.redeemed_thbc = 100 * THBC
        self.say("Alice redeems 100 THBC for baht: the payments program burns it")

    async def run(self) -> Story:
        await self.people()
        await self.meters()
        await self.thbc()
        await self.trade()
        await self.certificate()
        await self.redeem()
        return self.story
