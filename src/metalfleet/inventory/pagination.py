"""Keyset (cursor) pagination on a unique, ordered name column."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from sqlalchemy import Select

from metalfleet.core.errors import ValidationError

T = TypeVar("T", bound=tuple[Any, ...])

MAX_LIMIT = 1000


def encode_cursor(value: str) -> str:
    return base64.urlsafe_b64encode(b"after:" + value.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded.encode(), altchars=b"-_", validate=True).decode()
        if not raw.startswith("after:"):
            raise ValueError(raw)
        return raw.removeprefix("after:")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(
            "the cursor is not one this server handed out; pass the 'next' value of the "
            "previous page unchanged, or omit it to start from the beginning"
        ) from exc


def check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def paginate(statement: Select[T], name_column: Any, limit: int, cursor: str | None) -> Select[T]:
    """Order by name, start after the cursor, fetch one extra row to know if there is more."""
    check_limit(limit)
    if cursor:
        statement = statement.where(name_column > decode_cursor(cursor))
    return statement.order_by(name_column).limit(limit + 1)


def split_page(rows: list[Any], limit: int, name_of: Any) -> tuple[list[Any], str | None]:
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(name_of(rows[-1]))
    return rows, None
