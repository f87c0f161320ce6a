"""Cranks expire what the chain's clock has passed — orders (escrow back) and certificates — once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from solders.pubkey import Pubkey

from backend.chain.embedded import open_embedded_chain
from backend.cranks import Cranks, chain_time
from backend.feed import InProcessFeed
from backend.indexer import Decoder, EmbeddedSource, Indexer
from backend.storage import certificates, open_storage, orders
from programs.certificates import client as certificates_client
from programs.registry import client as registry
from tests.support import market
from tests.support.chainworld import GATEWAY_ID, GATEWAY_KEY, token_balance
from tests.support.scenario import KWH, PRICE, run_scenario

pytestmark = pytest.mark.chain


async def test_orders_and_certificates_are_expired_once_their_time_has_passed(tmp_path: Path) -> None:
    embedded = await open_embedded_chain(tmp_path / "chain")
    try:
        async with await open_storage(f"sqlite:///{tmp_path}/backend.db") as storage:
            await storage.add_gateway(GATEWAY_ID, bytes(GATEWAY_KEY.verify_key))
            s = await run_scenario(embedded.chain, embedded, storage)
            d = embedded.deployment
            chain = embedded.chain
            # A second certificate, valid (not retired), and an order that will run out.
            meter = registry.meter_address(d.registry, "pv-idx")[0]
            cert = await market.certify(chain, d, s.seller.key, embedded.admin, meter, 1, 4_000)
            now = await chain_time(chain)
            await market.create_order(chain, d, s.seller, 9, KWH, PRICE, now + 100)

            async def read(address: Pubkey) -> bytes | None:
                account = await chain.get_account(address)
                return None if account is None else bytes(account.data)

            indexer = Indexer(storage, EmbeddedSource(chain, list(d.programs.values())), Decoder(d, read), d,
                              InProcessFeed())
            await indexer.catch_up()
            order9 = str(market.order_address(d, s.seller, 9))
            before = await token_balance(chain, s.seller.grid)
            one = Cranks(storage, chain, d, payer=embedded.relayer)
            two = Cranks(storage, chain, d, payer=embedded.relayer)
            assert (await one.run_once()).orders_expired == []  # not yet
            chain.advance_time(101)
            # Two cranks at once: order 9 is past its time (the scenario's open order has an hour to go);
            # one expires it, the other's transaction is refused as already done, costing nothing.
            both = await asyncio.gather(one.run_once(), two.run_once())
            assert [o for summary in both for o in summary.orders_expired] == [order9]
            assert one.stats.already + two.stats.already == 1
            await indexer.catch_up()
            row = await orders.get_order(storage, order9)
            assert row is not None and (row.state, row.escrow) == ("EXPIRED", 0)
            assert await token_balance(chain, s.seller.grid) == before + KWH  # the escrow came back
            assert (await one.run_once()).orders_expired == []  # nothing twice

            # A year on, the valid certificate expires; the retired one stays retired.
            chain.advance_time(certificates_client.ONE_YEAR_SECONDS)
            summary = await one.run_once()
            assert summary.certificates_expired == [str(cert)]
            await indexer.catch_up()
            assert (await certificates.get_certificate(storage, str(cert))).status == "EXPIRED"  # type: ignore[union-attr]
            assert (await certificates.get_certificate(storage, str(s.certificate))).status == "RETIRED"  # type: ignore[union-attr]
            assert (await one.run_once()).certificates_expired == []
    finally:
        embedded.chain.close()
