"""The api's OpenAPI schema, as checked into docs/openapi.json (a test keeps the two equal).

    python -m backend.api.openapi > docs/openapi.json
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["schema_text"]


def schema_text(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def _offline_app() -> Any:
    """The app with stand-ins that are never called: building the schema touches no dependency."""
    import tempfile
    from pathlib import Path

    from solders.pubkey import Pubkey

    from backend.api.app import create_app
    from backend.api.context import ChainAddresses
    from backend.api.settings import ApiSettings

    key = Pubkey.default()
    settings = ApiSettings(token_key_file=Path(tempfile.mkdtemp()) / "token.key")
    return create_app(storage=None, chain=None, addresses=ChainAddresses(*[key] * 8),  # type: ignore[arg-type]
                      settings=settings)


if __name__ == "__main__":
    sys.stdout.write(schema_text(_offline_app().openapi()))
