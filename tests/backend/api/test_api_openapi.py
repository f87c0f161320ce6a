"""The served OpenAPI schema is the one checked into docs/openapi.json (regenerate with
``python -m backend.api.openapi > docs/openapi.json``)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from backend.api.openapi import schema_text
from backend.indexer.decode import kind_of
from programs.events import CATALOGUES
from tests.backend.api.api_support import RunningApi, running_api
from tests.support.fixtures import pg_url  # noqa: F401

DOC = Path(__file__).parents[3] / "docs" / "openapi.json"
PAGE_JS = Path(__file__).parents[3] / "backend" / "api" / "static" / "market.js"


def test_the_market_page_speaks_the_indexers_kinds() -> None:
    """Every kind the page describes is one the indexer records, and every field it reads of an event's
    ``data`` is one that event carries (docs/backend.md "Events")."""
    fields = {kind_of(cls.__name__): {f.name for f in dataclasses.fields(cls)}
              for catalogue in CATALOGUES.values() for cls in catalogue.classes}
    fields["trade_executed"].add("remaining")  # the indexer's additions
    fields["minted"].add("minted")
    fields["user_registered"].add("user_type")
    table = PAGE_JS.read_text().split("const DESCRIBE = {", 1)[1].split("\n};", 1)[0]
    described = re.findall(r"^  ([a-z_]+): \(d\) => (.+),$", table, re.MULTILINE)
    assert len(described) >= 10 and "trade_executed" in dict(described)
    for kind, text in described:
        assert kind in fields, kind
        assert set(re.findall(r"\bd\.([a-z_]+)", text)) <= fields[kind], (kind, text)


@pytest.fixture
async def api(pg_url: str, tmp_path: Path) -> AsyncIterator[RunningApi]:  # noqa: F811
    async with running_api(pg_url, tmp_path) as running:
        yield running


@pytest.mark.postgres
@pytest.mark.chain
async def test_served_schema_equals_the_checked_in_file(api: RunningApi) -> None:
    served = (await api.http.get("/openapi.json")).json()
    assert schema_text(served) == DOC.read_text(), "run: python -m backend.api.openapi > docs/openapi.json"
    paths = set(served["paths"])
    for path in ("/auth/nonce", "/auth/login", "/users", "/meters/{meter_id}/activate", "/orders/book",
                 "/orders/{address}/buy", "/orders/{address}/cancel", "/trades", "/certificates/{address}/retire",
                 "/payments/issue", "/payments/redeem", "/transactions", "/healthz", "/metrics"):
        assert path in paths, path


@pytest.mark.postgres
@pytest.mark.chain
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
