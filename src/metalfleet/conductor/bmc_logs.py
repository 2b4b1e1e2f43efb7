"""BMC log sync: new SEL / Redfish LogService entries become node events.

Every interval (``METALFLEET_BMC_LOG_INTERVAL_S``, default 300 s; 0 turns it off) the
conductor reads the logs of its share of idle nodes (the same shard and node selection as
power sync, skipping nodes whose BMC is already failing) with a bounded pool and a deadline
per node. Entries are keyed by (log service, entry id); the keys seen last time are kept in
``driver_info.bmc_log_seen`` (bounded), so each entry becomes one ``bmc-log`` event. On the
first sweep of a node only its newest entries are recorded: years of old SEL are not news.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import update

from metalfleet.conductor.periodic import Periodic, interval_from_env
from metalfleet.conductor.power_sync import SyncTarget
from metalfleet.db import models as m
from metalfleet.db.session import Database, rowcount
from metalfleet.drivers.base import HardwareType
from metalfleet.inventory import events

log = logging.getLogger(__name__)

INTERVAL_ENV = "METALFLEET_BMC_LOG_INTERVAL_S"
DEFAULT_INTERVAL_S = 300.0
SEEN_KEY = "bmc_log_seen"
KEEP_SEEN = 1000
FIRST_SWEEP_NEWEST = 20


def entry_key(entry: dict[str, Any]) -> str:
    return f"{entry.get('log') or 'log'}/{entry.get('id')}"


class BmcLogSync(Periodic[int]):
    """One conductor's BMC log sync; ``sweep()`` returns the number of events written."""

    def __init__(self, db: Database, *, targets: Callable[[], list[SyncTarget]],
                 hardware_types: Callable[[str], HardwareType], conductor: str,
                 interval_s: float | None = None, workers: int = 16,
                 call_timeout_s: float = 60.0) -> None:
        self.db = db
        self.targets = targets
        self.hardware_types = hardware_types
        self.conductor = conductor
        super().__init__(interval_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)
                         if interval_s is None else interval_s)
        self.workers = workers
        self.call_timeout_s = call_timeout_s

    def sweep(self) -> int:
        targets = [t for t in self.targets() if not t.bmc_error]
        written = 0
        with cf.ThreadPoolExecutor(max_workers=self.workers,
                                   thread_name_prefix="bmc-logs") as pool:
            futures = {pool.submit(self._read, t): t for t in targets}
            for future, target in futures.items():
                try:
                    entries = future.result(timeout=self.call_timeout_s)
                except Exception as exc:  # power sync owns bmc_error; here we only log
                    log.info("BMC logs of %s not read: %s", target.name, exc)
                    continue
                written += self._store(target, entries)
        return written

    def _read(self, target: SyncTarget) -> list[dict[str, Any]]:
        hardware = self.hardware_types(target.hardware_type)
        return hardware.management.log_entries(target.ctx)

    def _store(self, target: SyncTarget, entries: list[dict[str, Any]]) -> int:
        info = target.ctx.driver_info
        first = SEEN_KEY not in info
        seen = set(info.get(SEEN_KEY) or [])
        new = [e for e in entries if entry_key(e) not in seen]
        if first:
            new = new[-FIRST_SWEEP_NEWEST:]
        keys = [entry_key(e) for e in entries][-KEEP_SEEN:]
        if not new and not first and set(keys) <= seen:
            return 0
        with self.db.session() as session:
            result = session.execute(
                update(m.Node)
                .where(m.Node.id == target.node_id, m.Node.reservation.is_(None))
                .values(driver_info={**info, SEEN_KEY: keys})
                .execution_options(synchronize_session=False)
            )
            if rowcount(result) != 1:
                return 0  # a conductor took the node meanwhile; the next sweep sees them
            node = session.get(m.Node, target.node_id)
            for entry in new:
                severity = entry.get("severity") or "info"
                events.record(
                    session, node=node, kind="bmc-log", actor=self.conductor,
                    message=f"BMC {entry.get('log') or 'log'} {severity}: "
                            f"{entry.get('message') or '(no message)'}",
                    data={k: entry.get(k) for k in ("log", "id", "time", "severity",
                                                     "message_id", "sensor")},
                )
        return len(new)
