"""Certificate lifecycle through the api (design 6.0): a prosumer registers a meter (PENDING until the
operator activates it), its settled generation is minted, the owner requests a certificate, governance
validates it, the holder transfers and retires it; another is revoked with a reason; over-claiming is
refused before anything is signed (from the meter's settled generation on chain); the history of each
certificate is listed. Two requests for one meter at once: one is prepared, the other refused with 409
``certificate_request_pending`` before signing — never a chain failure after the wallet signed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from nacl.signing import SigningKey
from solders.keypair import Keypair

from gridtokenx.reading import Reading, sign
from programs.energy_token import client as energy
from tests.backend.api.api_support import RunningApi, TestWallet, running_api
from tests.backend.api.test_api_market import refused, registered
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path) as running:
        yield running


async def settle(api: RunningApi, gateway: SigningKey, meter_id: str, seq: int, import_wh: int, export_wh: int) -> None:
    """What the backend's minting worker does with a stored reading (it has its own tests)."""
    relayer = Keypair()
    await api.chain.fund(relayer.pubkey(), 10**9)
    signed = sign(Reading(meter_id, seq, 1_760_000_000_000 + seq * 1000, import_wh, export_wh), gateway)
    d = api.deployment
    result = await energy.settle_signed_reading(api.chain, d.grid.energy_program, d.grid.registry_program, d.grid.mint,
                                                signed, relayer)
    result.raise_for_failure()


async def test_meter_activation_and_certificate_lifecycle(api: RunningApi) -> None:
    owner = await registered(api, "prosumer", "Rooftop")
    buyer = await registered(api, "consumer", "Office")
    operator = TestWallet(api.admin)
    await operator.sign_in(api.http)
    gateway = SigningKey.generate()

    consumer_meter = await api.http.post("/meters", headers=buyer.headers(),
                                         json={"meter_id": "m-1", "public_key": bytes(gateway.verify_key).hex()})
    refused(consumer_meter, 403, "not_prosumer")
    await owner.act(api.http, "POST", "/meters", {"meter_id": "m-1", "public_key": bytes(gateway.verify_key).hex()})
    assert (await api.http.get("/meters/m-1")).json()["status"] == "PENDING"
    refused(await api.http.post("/meters", headers=owner.headers(),
                                json={"meter_id": "m-1", "public_key": "00" * 32}), 409, "AlreadyRegistered")
    refused(await api.http.post("/meters/m-1/activate", headers=owner.headers()), 403, "not_operator")
    await operator.act(api.http, "POST", "/meters/m-1/activate")
    assert (await api.http.get("/meters/m-1")).json()["status"] == "ACTIVE"
    listed = (await api.http.get(f"/meters?owner={owner.address}")).json()["items"]
    assert [m["meter_id"] for m in listed] == ["m-1"]

    await settle(api, gateway, "m-1", 1, 1_000, 1_000)  # baseline
    await settle(api, gateway, "m-1", 2, 1_000, 6_000)  # 5,000 Wh settled above it

    first = await owner.act(api.http, "POST", "/certificates", {"meter_id": "m-1", "to_wh": 3_000})
    cert = first["details"]["certificate"]
    assert (await api.http.get(f"/certificates/{cert}")).json()["state"] == "PENDING"
    refused(await api.http.post(f"/certificates/{cert}/validate", headers=owner.headers()), 403, "not_operator")
    await operator.act(api.http, "POST", f"/certificates/{cert}/validate")
    refused(await api.http.post(f"/certificates/{cert}/retire", headers=buyer.headers()), 403, "NotCertificateOwner")
    await owner.act(api.http, "POST", f"/certificates/{cert}/transfer", {"to": buyer.address})
    await buyer.act(api.http, "POST", f"/certificates/{cert}/retire")
    detail = (await api.http.get(f"/certificates/{cert}")).json()
    assert (detail["state"], detail["holder"], detail["from_wh"], detail["to_wh"]) == (
        "RETIRED", buyer.address, 0, 3_000)
    assert [h["event"] for h in detail["history"]] == [
        "certificate_issued", "certificate_validated", "certificate_transferred", "certificate_retired"]

    over = await api.http.post("/certificates", headers=owner.headers(), json={"meter_id": "m-1", "to_wh": 6_000})
    refused(over, 422, "ExceedsSettledGeneration")  # from the meter's settled generation on chain, before signing
    refused(await api.http.post("/certificates", headers=owner.headers(), json={"meter_id": "m-1", "to_wh": 3_000}),
            409, "AlreadyCertified")

    second = (await owner.act(api.http, "POST", "/certificates", {"meter_id": "m-1", "to_wh": 5_000}))["details"]
    await operator.act(api.http, "POST", f"/certificates/{second['certificate']}/revoke", {"reason": 2})
    revoked = (await api.http.get(f"/certificates/{second['certificate']}")).json()
    assert (revoked["state"], revoked["revoke_reason"], revoked["from_wh"]) == ("REVOKED", 2, 3_000)
    mine = (await api.http.get(f"/certificates?holder={buyer.address}")).json()["items"]
    assert [c["address"] for c in mine] == [cert]


async def test_two_requests_for_one_meter_at_once_never_fail_on_chain(api: RunningApi) -> None:
    owner = await registered(api, "prosumer", "Rooftop")
    operator = TestWallet(api.admin)
    await operator.sign_in(api.http)
    gateway = SigningKey.generate()
    await owner.act(api.http, "POST", "/meters", {"meter_id": "m-2", "public_key": bytes(gateway.verify_key).hex()})
    await operator.act(api.http, "POST", "/meters/m-2/activate")
    await owner.act(api.http, "POST", "/meters", {"meter_id": "m-3", "public_key": bytes(gateway.verify_key).hex()})
    await operator.act(api.http, "POST", "/meters/m-3/activate")
    for meter in ("m-2", "m-3"):
        await settle(api, gateway, meter, 1, 0, 0)
        await settle(api, gateway, meter, 2, 0, 9_000)

    def ask(to_wh: int, meter: str = "m-2") -> Any:
        return api.http.post("/certificates", headers=owner.headers(), json={"meter_id": meter, "to_wh": to_wh})

    # The same holder's requests for two meters at once are independent: both are prepared and both land.
    both = await asyncio.gather(ask(1_000, "m-3"), ask(1_500, "m-3"), ask(4_000, "m-2"))
    assert [r.status_code for r in both] == [201, 409, 201] or [r.status_code for r in both] == [409, 201, 201]
    for reply in both:
        if reply.status_code == 201:
            assert (await owner.sign_and_submit(api.http, reply.json())).status_code == 200
    assert len((await api.http.get("/certificates?meter_id=m-2")).json()["items"]) == 1
    await api.storage.execute("DELETE FROM certificates WHERE meter_id = 'm-2'")  # start m-2 below from D6 empty

    # Two requests over HTTP at once (two tabs, a double click): both would name certificate 1.
    replies = await asyncio.gather(ask(5_000), ask(6_000))
    assert sorted(r.status_code for r in replies) == [201, 409], [r.text for r in replies]
    prepared = next(r for r in replies if r.status_code == 201).json()
    pending = next(r for r in replies if r.status_code == 409).json()["error"]
    assert pending["code"] == "certificate_request_pending" and pending["detail"]["index"] == 1
    assert prepared["details"]["index"] == 1 and prepared["details"]["from_wh"] == 4_000
    refused(await ask(7_000), 409, "certificate_request_pending")  # still held while it is being signed

    # The one that landed frees the index (a replay of it, refused before it ran, changes nothing); the next
    # request continues from the chain's mark — not from D6, whose rows for m-2 are gone here (a lagging or
    # rebuilt D6 would give index 0 and a chain failure after signing).
    first = await owner.sign_and_submit(api.http, prepared)
    assert first.status_code == 200, first.text
    refused(await owner.sign_and_submit(api.http, prepared), 422, "AlreadyProcessed")
    second = await ask(9_000)
    assert second.status_code == 201, second.text
    assert (second.json()["details"]["index"], second.json()["details"]["from_wh"]) == (
        2, prepared["details"]["to_wh"])
    done = await owner.sign_and_submit(api.http, second.json())
    assert done.status_code == 200, done.text
    issued = (await api.http.get("/certificates?meter_id=m-2")).json()["items"]
    assert sorted((c["index"], c["from_wh"], c["to_wh"]) for c in issued) == [
        (1, 4_000, prepared["details"]["to_wh"]), (2, prepared["details"]["to_wh"], 9_000)]
