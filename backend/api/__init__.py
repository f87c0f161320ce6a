"""The api role: HTTP + WebSocket for wallets, the CLI wallet and the market page (issue 11).

Non-custodial: routes build transactions with programs/<name>/client.py, the user's wallet signs, the
api checks the signed transaction is exactly the one it built and submits it. Reads come from storage
(the indexer's tables) and the live feed, never from per-request chain calls.
"""

from backend.api.app import API_VERSION, create_app
from backend.api.context import ChainAddresses
from backend.api.settings import ApiSettings

__all__ = ["API_VERSION", "ApiSettings", "ChainAddresses", "create_app"]
