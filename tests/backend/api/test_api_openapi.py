"""The served OpenAPI schema is the one checked into docs/openapi.json (regenerate with
``python -m backend.api.openapi > docs/openapi.json``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.api.openapi import schema_text
from tests.backend.api.api_support import RunningApi, running_api
from tests.support.fixtures import pg_url  # noqa: F401

pytestmark = [pytest.mark.postgres, pytest.mark.chain]
DOC = Path(__file__).parents[3] / "docs" / "openapi.json"


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path) as running:
        yield running


async def test_served_schema_equals_the_checked_in_file(api: RunningApi) -> None:
    served = (await api.http.get("/openapi.json")).json()
    assert schema_text(served) == DOC.read_text(), "run: python -m backend.api.openapi > docs/openapi.json"
    paths = set(served["paths"])
    for path in ("/auth/nonce", "/auth/login", "/users", "/meters/{meter_id}/activate", "/orders/book",
                 "/orders/{address}/buy", "/orders/{address}/cancel", "/trades", "/certificates/{address}/retire",
                 "/payments/issue", "/payments/redeem", "/transactions", "/healthz", "/metrics"):
        assert path in paths, path


async def test_every_list_is_paginated(api: RunningApi) -> None:
    served = (await api.http.get("/openapi.json")).json()
    for path, methods in served["paths"].items():
        get = methods.get("get")
        if get is None:
            continue
        schema = get["responses"]["200"]["content"].get("application/json", {}).get("schema", {})
        if schema.get("$ref", "").split("/")[-1].startswith("Page_"):
            names = {p["name"] for p in get.get("parameters", [])}
            assert {"limit", "cursor"} <= names, path
