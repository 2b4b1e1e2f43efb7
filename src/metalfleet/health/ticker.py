"""The conductor's periodic health work: engine.tick every ``health_tick_s`` (default 2 s).

``METALFLEET_HEALTH_TICK_S`` sets the interval where no value is passed (0 turns it off).
Every conductor runs it; engine.tick's row locks and conditional UPDATEs keep them from
acting twice on the same ticket or signal.
"""

from __future__ import annotations

import logging
import time

from metalfleet.conductor.periodic import interval_from_env
from metalfleet.db.session import Database
from metalfleet.health import engine

log = logging.getLogger(__name__)

INTERVAL_ENV = "METALFLEET_HEALTH_TICK_S"
DEFAULT_INTERVAL_S = 2.0


class HealthTicker:
    def __init__(self, db: Database, *, conductor: str, interval_s: float | None = None
                 ) -> None:
        self.db = db
        self.actor = f"health-engine@{conductor}"
        self.interval_s = (interval_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)
                           if interval_s is None else interval_s)
        self._last = 0.0

    def due(self) -> bool:
        return self.interval_s > 0 and time.monotonic() - self._last >= self.interval_s

    def run_once(self) -> None:
        self._last = time.monotonic()
        try:
            engine.tick(self.db, actor=self.actor)
        except Exception:  # the conductor loop must go on
            log.exception("health tick failed")
