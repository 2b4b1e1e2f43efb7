"""Jinja filters the templates share: times, sizes and the colour family of a state."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment

from metalfleet.core.states import FAILED_STATES, WORK_STATES, NodeState

IDLE = {NodeState.ENROLLED, NodeState.MANAGEABLE, NodeState.INSPECTED}


def tone(state: str) -> str:
    """CSS family of a state: active, free, work, failed or idle."""
    try:
        value = NodeState(state)
    except ValueError:
        return "idle"
    if value is NodeState.ACTIVE:
        return "active"
    if value is NodeState.AVAILABLE:
        return "free"
    if value in WORK_STATES:
        return "work"
    if value in FAILED_STATES:
        return "failed"
    return "idle"


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def timestamp(value: datetime | None) -> str:
    return _aware(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    seconds = int((datetime.now(UTC) - _aware(value)).total_seconds())
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{max(seconds, 0)} s ago"


def size(value: Any, unit: str = "B") -> str:
    """Human size of a number of bytes (unit B) or MiB (unit MiB)."""
    if not isinstance(value, int | float):
        return "—"
    number = float(value) * (1024 * 1024 if unit == "MiB" else 1)
    for suffix in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if number < 1024 or suffix == "PiB":
            return f"{number:.0f} {suffix}" if suffix == "B" else f"{number:.1f} {suffix}"
        number /= 1024
    return f"{number:.1f} PiB"


def install_filters(env: Environment) -> None:
    env.filters.update(tone=tone, timestamp=timestamp, ago=ago, size=size)
