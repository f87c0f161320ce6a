"""Sign-in over real HTTP: good, expired, replayed nonce, wrong domain, another wallet's signature,
bad wallet format; session tokens bound to the wallet; the error model; body limits; health, metrics."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from solders.keypair import Keypair

from backend.api.auth.siws import SiwsMessage
from tests.backend.api.api_support import DOMAIN, RunningApi, TestWallet, running_api
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path, settings={"nonce_ttl_s": 2, "clock_skew_s": 0}) as running:
        yield running


async def _challenge(api: RunningApi, wallet: TestWallet) -> str:
    reply = await api.http.post("/auth/nonce", json={"address": wallet.address})
    assert reply.status_code == 200, reply.text
    message: str = reply.json()["message"]
    return message


async def test_good_sign_in_gives_a_token_bound_to_the_wallet(api: RunningApi) -> None:
    wallet = TestWallet()
    session = await wallet.sign_in(api.http)
    assert session["wallet"] == wallet.address and session["operator"] is False
    me = await api.http.get("/auth/me", headers=wallet.headers())
    assert me.status_code == 200 and me.json() == {"wallet": wallet.address, "operator": False}
    parsed = SiwsMessage.parse(await _challenge(api, wallet))
    assert (parsed.domain, parsed.uri, parsed.version, parsed.chain_id) == (DOMAIN, api.settings.uri, "1", "localnet")


async def test_operator_wallet_is_told_so(api: RunningApi) -> None:
    session = await TestWallet(api.admin).sign_in(api.http)
    assert session["operator"] is True


async def test_replayed_nonce_is_refused(api: RunningApi) -> None:
    wallet = TestWallet()
    message = await _challenge(api, wallet)
    body = {"message": message, "signature": str(wallet.key.sign_message(message.encode()))}
    assert (await api.http.post("/auth/login", json=body)).status_code == 200
    again = await api.http.post("/auth/login", json=body)
    assert again.status_code == 401
    assert again.json()["error"]["code"] == "nonce_used"


async def test_expired_message_is_refused(api: RunningApi) -> None:
    wallet = TestWallet()
    message = await _challenge(api, wallet)
    await asyncio.sleep(2.2)  # nonce_ttl_s = 2: the message's Expiration Time has passed
    reply = await api.http.post("/auth/login", json={"message": message,
                                                     "signature": str(wallet.key.sign_message(message.encode()))})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "expired"


async def test_message_for_another_domain_is_refused(api: RunningApi) -> None:
    wallet = TestWallet()
    parsed = SiwsMessage.parse(await _challenge(api, wallet))
    forged = SiwsMessage(**{**parsed.__dict__, "domain": "evil.example"}).text()
    reply = await api.http.post("/auth/login", json={"message": forged,
                                                     "signature": str(wallet.key.sign_message(forged.encode()))})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "wrong_domain"
    # the refused attempt did not spend the nonce: the genuine message still signs in
    genuine = parsed.text()
    ok = await api.http.post("/auth/login", json={"message": genuine,
                                                  "signature": str(wallet.key.sign_message(genuine.encode()))})
    assert ok.status_code == 200


async def test_another_wallets_signature_is_refused(api: RunningApi) -> None:
    victim, attacker = TestWallet(), TestWallet()
    message = await _challenge(api, victim)
    reply = await api.http.post("/auth/login", json={
        "message": message, "signature": str(attacker.key.sign_message(message.encode()))})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "bad_signature"


async def test_tampered_message_is_refused(api: RunningApi) -> None:
    wallet = TestWallet()
    message = await _challenge(api, wallet)
    signature = str(wallet.key.sign_message(message.encode()))
    tampered = message.replace("Sign in", "Sign  in")
    reply = await api.http.post("/auth/login", json={"message": tampered, "signature": signature})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "bad_signature"


@pytest.mark.parametrize("address", ["not-base58-0OIl", "1111", "3" * 60, ""])
async def test_bad_wallet_format_is_refused(api: RunningApi, address: str) -> None:
    reply = await api.http.post("/auth/nonce", json={"address": address})
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "bad_wallet"


async def test_unknown_nonce_and_garbage_are_refused(api: RunningApi) -> None:
    wallet = TestWallet()
    parsed = SiwsMessage.parse(await _challenge(api, wallet))
    made_up = SiwsMessage(**{**parsed.__dict__, "nonce": "abcdefgh12345678"}).text()
    reply = await api.http.post("/auth/login", json={"message": made_up,
                                                     "signature": str(wallet.key.sign_message(made_up.encode()))})
    assert reply.json()["error"]["code"] == "nonce_used"
    garbage = await api.http.post("/auth/login", json={"message": "hello", "signature": "x"})
    assert garbage.status_code == 400 and garbage.json()["error"]["code"] in {"bad_message", "bad_signature"}


async def test_tokens_are_checked(api: RunningApi) -> None:
    assert (await api.http.get("/auth/me")).json()["error"]["code"] == "not_signed_in"
    bad = await api.http.get("/auth/me", headers={"Authorization": "Bearer abc.def.ghi"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "bad_token"
    # public reads take no token, but one that is sent is checked
    assert (await api.http.get("/orders/book")).status_code == 200
    bad_read = await api.http.get("/orders/book", headers={"Authorization": "Bearer abc.def.ghi"})
    assert bad_read.status_code == 401 and bad_read.json()["error"]["code"] == "bad_token"
    # a token minted with another key is not ours
    import jwt

    forged = jwt.encode({"sub": str(Keypair().pubkey()), "aud": "session", "iss": api.settings.uri,
                         "iat": 0, "exp": 2**40}, b"x" * 32, algorithm="HS256")
    reply = await api.http.get("/auth/me", headers={"Authorization": f"Bearer {forged}"})
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "bad_token"


async def test_token_key_file_is_private(api: RunningApi) -> None:
    key_file = api.settings.token_key_file
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


async def test_errors_have_a_stable_code(api: RunningApi) -> None:
    missing = await api.http.get("/no/such/thing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    invalid = await api.http.post("/auth/login", json={"message": 5})
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "invalid_request"
    assert "message" in invalid.json()["error"]["message"]


async def test_request_body_is_limited(api: RunningApi) -> None:
    big = {"message": "x" * (api.settings.max_body_bytes + 10), "signature": "y"}
    reply = await api.http.post("/auth/login", json=big)
    assert reply.status_code == 413 and reply.json()["error"]["code"] == "request_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(100):
            yield b"x" * 1024

    streamed = await api.http.post("/auth/login", content=chunks(), headers={"content-type": "application/json"})
    assert streamed.status_code == 413


async def test_health_reports_each_dependency(api: RunningApi) -> None:
    reply = await api.http.get("/healthz")
    assert reply.status_code == 200, reply.text
    checks = reply.json()["checks"]
    assert checks["database"]["status"] == "ok" and checks["chain"]["status"] == "ok"
    assert checks["broker"]["status"] == "not_configured" and checks["redis"]["status"] == "not_configured"


async def test_health_fails_when_a_dependency_does(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with running_api(pg_url, tmp_path, broker=("127.0.0.1", port)) as api:
        reply = await api.http.get("/healthz")
        assert reply.status_code == 503
        assert reply.json()["checks"]["broker"]["status"] == "failing"


async def test_metrics_count_requests_by_status(api: RunningApi) -> None:
    await api.http.get("/auth/me")
    text = (await api.http.get("/metrics")).text
    assert 'gridtokenx_api_requests_total{method="GET",route="/auth/me",status="401"} 1.0' in text
    assert "gridtokenx_readings_stored 0" in text
    assert "gridtokenx_ws_clients 0.0" in text
