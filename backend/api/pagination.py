"""Cursor pagination for every list: ``?limit=N&cursor=OPAQUE`` → ``{"items": [...], "next": OPAQUE|null}``.

A cursor is the sort key of the last item returned (base64url JSON), so pages stay stable while rows are
added — no offsets that skip or repeat rows when the book changes between two requests.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from backend.api.errors import ApiError

__all__ = ["Page", "PageParams", "decode_cursor", "encode_cursor", "page_params"]

_BAD_CURSOR = "cursor is not one this API handed out"
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next: str | None = None


@dataclass(frozen=True)
class PageParams:
    limit: int
    after: list[Any] | None  # the sort key of the last row of the previous page

    def key(self, *types: type) -> tuple[Any, ...] | None:
        """``after`` checked against the sort key's shape (e.g. ``key(int, str)``): a cursor of another
        list, or one made by hand, is refused with ``bad_cursor`` rather than reaching the database."""
        if self.after is None:
            return None
        if len(self.after) != len(types) or not all(type(v) is t for v, t in zip(self.after, types, strict=True)):
            raise ApiError(400, "bad_cursor", _BAD_CURSOR)
        return tuple(self.after)


def _fits(value: Any) -> bool:
    """A sort-key value the database can compare: a BIGINT, or a short text without NUL (keys are
    addresses and times; a cursor made by hand could hold anything)."""
    if isinstance(value, int):
        return _I64_MIN <= value <= _I64_MAX
    return len(value) <= 100 and "\0" not in value


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "bad_cursor", _BAD_CURSOR) from None
    if not isinstance(key, list) or not all(isinstance(k, (int, str)) and _fits(k) for k in key):
        raise ApiError(400, "bad_cursor", _BAD_CURSOR)
    return key


def page_params(
    limit: int = Query(50, ge=1, le=500, description="items per page"),
    cursor: str | None = Query(None, max_length=512, description="`next` of the previous page"),
) -> PageParams:
    return PageParams(limit, decode_cursor(cursor) if cursor else None)
