"""Session tokens (HS256 JWTs, PyJWT) and transaction intents, signed with one key read from a file.

The key file must be readable by its owner only (0600); a missing file is created that way. The key is
never logged. Tokens are short-lived (``token_ttl_s``); the subject is the wallet address.
"""

from __future__ import annotations

import os
import secrets
import stat
import time
import uuid
from pathlib import Path
from typing import Any

import jwt

from backend.api.errors import ApiError

__all__ = ["TokenKeyError", "Tokens", "load_or_create_key"]

_ALGORITHM = "HS256"


class TokenKeyError(Exception):
    pass


def load_or_create_key(path: Path) -> bytes:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise TokenKeyError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    key = path.read_text().strip().encode()
    if len(key) < 32:
        raise TokenKeyError(f"{path} holds fewer than 32 characters of key")
    return key


class Tokens:
    def __init__(self, key: bytes, *, issuer: str, ttl_s: int) -> None:
        self._key = key
        self.issuer = issuer
        self.ttl_s = ttl_s

    def session(self, wallet: str) -> tuple[str, int]:
        """A session token for ``wallet`` and its expiry (unix seconds)."""
        now = int(time.time())
        expires = now + self.ttl_s
        claims = {"sub": wallet, "iss": self.issuer, "aud": "session", "iat": now, "exp": expires,
                  "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self._key, algorithm=_ALGORITHM), expires

    def wallet_of(self, token: str) -> str:
        claims = self._decode(token, "session")
        return str(claims["sub"])

    def intent(self, claims: dict[str, Any], ttl_s: int) -> str:
        now = int(time.time())
        return jwt.encode({**claims, "iss": self.issuer, "aud": "intent", "iat": now, "exp": now + ttl_s},
                          self._key, algorithm=_ALGORITHM)

    def read_intent(self, token: str) -> dict[str, Any]:
        return self._decode(token, "intent")

    def _decode(self, token: str, audience: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self._key, algorithms=[_ALGORITHM], audience=audience, issuer=self.issuer,
                options={"require": ["exp", "iat", "sub" if audience == "session" else "exp"]},
            )
        except jwt.ExpiredSignatureError:
            code = "session_expired" if audience == "session" else "intent_expired"
            raise ApiError(401 if audience == "session" else 409, code, f"the {audience} token has expired") from None
        except jwt.InvalidTokenError as exc:
            code = "bad_token" if audience == "session" else "bad_intent"
            raise ApiError(401 if audience == "session" else 400, code, f"invalid {audience} token: {exc}") from None
        return claims
