"""Periodic conductor work (power sync, BMC logs, BMC sensors): one schedule, one at a time.

The conductor loop asks ``due()`` and runs ``run_once()`` in a thread; a sweep still running
when the next one is due is not started twice. Intervals come from settings or an
environment variable; 0 turns the work off.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


def interval_from_env(variable: str, default: float) -> float:
    """Seconds from ``variable`` (0 turns the work off); ``default`` if unset or not a number."""
    raw = os.environ.get(variable, "").strip()
    try:
        return max(0.0, float(raw)) if raw else default
    except ValueError:
        log.warning("ignoring %s=%r: not a number of seconds", variable, raw)
        return default


class Periodic(Generic[R]):
    """Runs :meth:`sweep` every ``interval_s`` (the first time one interval after start)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.last_result: R | None = None
        self._next_at = time.monotonic() + interval_s
        self._running = threading.Lock()

    def sweep(self) -> R:
        raise NotImplementedError

    def set_interval(self, seconds: float) -> None:
        """Sweep every ``seconds`` from now on (0 turns it off)."""
        self.interval_s = seconds
        self._next_at = time.monotonic() + seconds

    def due(self) -> bool:
        if self.interval_s <= 0 or self._running.locked():
            return False
        return time.monotonic() >= self._next_at

    def run_once(self) -> R | None:
        """One sweep unless one runs already; schedules the next one."""
        if not self._running.acquire(blocking=False):
            return None
        try:
            self.last_result = self.sweep()
            return self.last_result
        finally:
            self._next_at = time.monotonic() + self.interval_s
            self._running.release()
