"""The api role: HTTP + WebSocket for wallets, the CLI wallet and the market page (issue 11).

Non-custodial: routes build transactions with programs/<name>/client.py, the user's wallet signs, the
api checks the signed transaction is exactly the one it built and submits it. Reads come from storage
(the indexer's tables) and the live feed, never from per-request chain calls.

The names below are loaded when first used: ``backend.api.settings`` (which ``backend/config.py`` reads
for every ``gridtokenx backend`` command) must not pull in FastAPI and the routes.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from backend.api.app import API_VERSION, create_app
    from backend.api.context import ChainAddresses
    from backend.api.settings import ApiSettings

__all__ = ["API_VERSION", "ApiSettings", "ChainAddresses", "create_app"]

_WHERE = {"API_VERSION": "backend.api.app", "create_app": "backend.api.app",
          "ChainAddresses": "backend.api.context", "ApiSettings": "backend.api.settings"}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
