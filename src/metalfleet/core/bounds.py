"""Size caps on free-form JSON that nodes and clients send (pure, no I/O).

Dicts such as health evidence, node labels and driver_info are stored as they come; a cap
on their serialized size keeps one request from filling the database (issue 11, item 6).
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

T = TypeVar("T")


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (what the database stores, roughly)."""
    return len(json.dumps(value, separators=(",", ":"), default=str).encode())


def json_within(value: T, limit: int, what: str) -> T:
    """``value`` unchanged, or ValueError when its JSON is larger than ``limit`` bytes."""
    size = json_size(value)
    if size > limit:
        raise ValueError(f"{what} is too large ({size} bytes as JSON; at most {limit})")
    return value


MAX_LABELS = 64
MAX_LABEL_KEY = 63
MAX_LABEL_VALUE = 255
MAX_DRIVER_INFO_BYTES = 16 * 1024


def labels_within(value: dict[str, str] | None) -> dict[str, str] | None:
    """Node labels: at most MAX_LABELS, keys and values of bounded length."""
    if value is None:
        return None
    if len(value) > MAX_LABELS:
        raise ValueError(f"too many labels ({len(value)}; at most {MAX_LABELS})")
    for key, text in value.items():
        if not key or len(key) > MAX_LABEL_KEY:
            raise ValueError(f"label key {key[:80]!r}: 1 to {MAX_LABEL_KEY} characters")
        if len(text) > MAX_LABEL_VALUE:
            raise ValueError(f"label {key!r}: value longer than {MAX_LABEL_VALUE} characters")
    return value


def driver_info_within(value: dict[str, object] | None) -> dict[str, object] | None:
    return None if value is None else json_within(value, MAX_DRIVER_INFO_BYTES, "driver_info")
