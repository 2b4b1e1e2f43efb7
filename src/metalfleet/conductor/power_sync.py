"""Power sync: every interval, read the power state of every idle node from its BMC.

It finds power changes made outside metalfleet (someone pressed the button, a BMC web UI, a
PDU) and records them (``power_state`` and an event), and keeps each node's ``bmc_error``
honest: set when the BMC fails (``kind: message``), cleared when it answers again, with an
event only when the kind of failure changes, never one per sweep.

How one sweep stays fast and fair with thousands of fragile BMCs:

- Bounded concurrency: at most ``max_workers`` BMC calls at once per conductor and at most
  ``per_bmc`` per BMC endpoint (host and port). A dispatcher hands a node to a worker only
  when its BMC has a free slot, so workers never wait on a busy BMC and one slow BMC only
  delays its own nodes.
- A deadline per node (``call_timeout_s``): a node whose read has not finished by then is
  recorded as unreachable ("timed out") and the sweep goes on; its worker finishes (the
  drivers' own socket timeouts end it) in the background.
- Retries with backoff for unreachable and protocol errors (never for a refused password:
  retrying a wrong password locks BMC accounts).
- It never fights the conductor: it skips nodes that are reserved, in a work state or have a
  pending power request, and every UPDATE re-checks all three and the power state it read,
  so a sweep result that raced a conductor action is dropped.
- Several conductors share the sweep: each takes the nodes whose id hashes (CRC-32) to its
  index among the live conductors (the ``conductors`` table, sorted by name). A conductor
  joining or leaving moves nodes between shards at the next sweep; a node may be read twice
  or once skipped in that sweep, which is harmless.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from metalfleet.conductor.periodic import Periodic, interval_from_env
from metalfleet.core.errors import DriverError
from metalfleet.core.states import WORK_STATES, PowerState
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import Database, rowcount
from metalfleet.drivers.base import BmcCredentials, HardwareType, NodeContext, PowerInterface
from metalfleet.inventory import events
from metalfleet.secrets import CredentialCipher

log = logging.getLogger(__name__)

INTERVAL_ENV = "METALFLEET_POWER_SYNC_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0
_WORK_STATE_VALUES = [state.value for state in WORK_STATES]
_RETRYABLE = {"unreachable", "protocol_error", None}
_WRITE_BATCH = 500


@dataclass(frozen=True)
class SyncTarget:
    """What the sweep knows of a node: read once from the database, with no ORM object."""

    node_id: str
    name: str
    hardware_type: str
    ctx: NodeContext
    power_state: str
    bmc_error: str | None

    @property
    def bmc_key(self) -> str:
        try:
            parts = urlsplit(self.ctx.bmc.address)
            return f"{parts.hostname}:{parts.port}"
        except ValueError:
            return self.ctx.bmc.address


@dataclass
class Reading:
    target: SyncTarget
    power: PowerState | None = None
    error: str | None = None  # "kind: message"
    attempts: int = 0


@dataclass
class SweepResult:
    nodes: int = 0
    changed: list[str] = field(default_factory=list)
    errors: int = 0
    recovered: int = 0
    timed_out: int = 0
    seconds: float = 0.0


def error_kind(bmc_error: str | None) -> str | None:
    if not bmc_error:
        return None
    kind, sep, _ = bmc_error.partition(":")
    return kind if sep and " " not in kind else "error"


class PowerSync(Periodic[SweepResult]):
    """One conductor's power sync. ``sweep()`` blocks (call it from a thread)."""

    def __init__(
        self,
        db: Database,
        cipher: CredentialCipher,
        *,
        conductor: str,
        hardware_types: Callable[[str], HardwareType],
        interval_s: float | None = None,
        max_workers: int = 64,
        per_bmc: int = 4,
        call_timeout_s: float = 30.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        dead_after_s: float = 30.0,
        power_for: Callable[[str, HardwareType], PowerInterface] | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.conductor = conductor
        self.hardware_types = hardware_types
        super().__init__(interval_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)
                         if interval_s is None else interval_s)
        self.max_workers = max_workers
        self.per_bmc = per_bmc
        self.call_timeout_s = call_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.dead_after_s = dead_after_s
        self.power_for = power_for or _sync_power

    # -- the sweep --------------------------------------------------------------------------

    def sweep(self) -> SweepResult:
        started = time.monotonic()
        targets = self.targets()
        readings = self._read_all(targets)
        result = self._store(readings)
        result.nodes = len(targets)
        result.timed_out = sum(1 for r in readings if r.error and "timed out after" in r.error)
        result.seconds = round(time.monotonic() - started, 3)
        if result.changed or result.errors or result.recovered:
            log.info("power sync on %s: %d nodes in %.1f s, %d changed outside metalfleet, "
                     "%d BMC errors, %d recovered", self.conductor, result.nodes,
                     result.seconds, len(result.changed), result.errors, result.recovered)
        return result

    def shard(self, session: Session) -> tuple[int, int]:
        """(this conductor's index, how many live): the share every per-node sweep takes."""
        cutoff = utcnow() - timedelta(seconds=self.dead_after_s)
        live = sorted(session.scalars(
            select(m.Conductor.name).where(m.Conductor.heartbeat_at >= cutoff)))
        if self.conductor not in live:
            return 0, 1
        return live.index(self.conductor), len(live)

    def targets(self) -> list[SyncTarget]:
        """This conductor's share of the idle nodes, with their BMC credentials."""
        with self.db.session() as session:
            index, count = self.shard(session)
            rows = session.execute(
                select(m.Node.id, m.Node.name, m.Node.hardware_type, m.Node.bmc_driver,
                       m.Node.bmc_address, m.Node.bmc_username, m.Node.bmc_password_encrypted,
                       m.Node.bmc_verify_tls, m.Node.driver_info, m.Node.power_state,
                       m.Node.bmc_error)
                .where(m.Node.reservation.is_(None), m.Node.target_power_state.is_(None),
                       m.Node.state.not_in(_WORK_STATE_VALUES), m.Node.retired.is_(False))
                .order_by(m.Node.name)
            ).all()
        targets = []
        for row in rows:
            if count > 1 and zlib.crc32(row.id.encode()) % count != index:
                continue
            password = (self.cipher.decrypt(row.bmc_password_encrypted)
                        if row.bmc_password_encrypted else None)
            ctx = NodeContext(
                name=row.name, uuid=row.id,
                bmc=BmcCredentials(driver=row.bmc_driver, address=row.bmc_address,
                                   username=row.bmc_username, password=password,
                                   verify_tls=row.bmc_verify_tls),
                driver_info=dict(row.driver_info or {}))
            targets.append(SyncTarget(row.id, row.name, row.hardware_type, ctx,
                                      row.power_state, row.bmc_error))
        return targets

    def _read_one(self, target: SyncTarget) -> Reading:
        reading = Reading(target)
        try:
            power = self.power_for(target.hardware_type,
                                   self.hardware_types(target.hardware_type))
        except Exception as exc:
            reading.error = f"invalid_config: {_text(exc)}"
            return reading
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            reading.attempts = attempt + 1
            try:
                reading.power, reading.error = power.get_power_state(target.ctx), None
                return reading
            except DriverError as exc:
                kind = exc.extra.get("kind")
                reading.error = f"{kind or 'error'}: {exc.detail}"
                if kind not in _RETRYABLE:
                    return reading
            except Exception as exc:  # a driver bug must not end the sweep
                log.exception("power sync read of %s failed unexpectedly", target.name)
                reading.error = f"error: {type(exc).__name__}: {_text(exc)}"
                return reading
            if attempt < self.retries:
                time.sleep(delay)
                delay *= 2
        return reading

    def _read_all(self, targets: list[SyncTarget]) -> list[Reading]:
        """Read every target, at most ``max_workers`` at once and ``per_bmc`` per BMC."""
        queues: dict[str, deque[SyncTarget]] = {}
        for target in targets:
            queues.setdefault(target.bmc_key, deque()).append(target)
        busy: dict[str, int] = dict.fromkeys(queues, 0)
        ready: deque[str] = deque(queues)  # BMCs with queued nodes and a free slot
        readings: list[Reading] = []
        running: dict[cf.Future[Reading], tuple[SyncTarget, float]] = {}
        abandoned: dict[cf.Future[Reading], SyncTarget] = {}
        pool = cf.ThreadPoolExecutor(max_workers=self.max_workers,
                                     thread_name_prefix="power-sync")
        try:
            while ready or running:
                while ready and len(running) + len(abandoned) < self.max_workers:
                    key = ready.popleft()
                    target = queues[key].popleft()
                    busy[key] += 1
                    future = pool.submit(self._read_one, target)
                    running[future] = (target, time.monotonic() + self.call_timeout_s)
                    if queues[key] and busy[key] < self.per_bmc:
                        ready.append(key)
                deadlines = [deadline for _, deadline in running.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                done, _ = cf.wait(set(running) | set(abandoned), timeout=timeout,
                                  return_when=cf.FIRST_COMPLETED)
                for future in done:
                    if future in abandoned:
                        target = abandoned.pop(future)
                    else:
                        target, _ = running.pop(future)
                        readings.append(future.result())
                    self._free(target.bmc_key, busy, queues, ready)
                now = time.monotonic()
                for future, (target, deadline) in list(running.items()):
                    if now >= deadline:
                        del running[future]
                        abandoned[future] = target
                        readings.append(Reading(target, error=(
                            f"unreachable: the BMC did not answer within "
                            f"{self.call_timeout_s:g} s (timed out after "
                            f"{self.call_timeout_s:g} s)")))
            # what is left is queued behind reads that hung: do not wait for them
            for queue in queues.values():
                while queue:
                    readings.append(Reading(queue.popleft(), error=(
                        "unreachable: earlier reads on this BMC did not finish within "
                        f"{self.call_timeout_s:g} s (timed out after "
                        f"{self.call_timeout_s:g} s)")))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return readings

    def _free(self, key: str, busy: dict[str, int], queues: dict[str, deque[SyncTarget]],
              ready: deque[str]) -> None:
        busy[key] -= 1
        if queues[key] and busy[key] == self.per_bmc - 1 and key not in ready:
            ready.append(key)

    # -- storing ----------------------------------------------------------------------------

    def _store(self, readings: list[Reading]) -> SweepResult:
        result = SweepResult()
        pending = [r for r in readings if _needs_write(r)]
        result.errors = sum(1 for r in readings if r.error)
        for start in range(0, len(pending), _WRITE_BATCH):
            with self.db.session() as session:
                for reading in pending[start:start + _WRITE_BATCH]:
                    self._store_one(session, reading, result)
        return result

    def _store_one(self, session: Session, reading: Reading, result: SweepResult) -> None:
        target = reading.target
        guard = (m.Node.id == target.node_id, m.Node.reservation.is_(None),
                 m.Node.target_power_state.is_(None),
                 m.Node.state.not_in(_WORK_STATE_VALUES))
        values: dict[str, Any] = {}
        old_kind, new_kind = error_kind(target.bmc_error), error_kind(reading.error)
        if reading.error != target.bmc_error:
            values["bmc_error"] = reading.error
        power = reading.power
        power_changed = (power is not None and power is not PowerState.UNKNOWN
                         and power.value != target.power_state)
        if power_changed:
            assert power is not None
            values["power_state"] = power.value
        if not values:
            return
        values["updated_at"] = utcnow()
        outcome = session.execute(
            update(m.Node).where(*guard, m.Node.power_state == target.power_state)
            .values(**values).execution_options(synchronize_session=False))
        if rowcount(outcome) != 1:
            return  # the conductor (or an API request) got there first: its word wins
        if power_changed and power is not None and target.power_state != "unknown":
            result.changed.append(target.name)
            self._event(session, target, "power",
                        f"power changed outside metalfleet: {target.power_state} -> "
                        f"{power.value}", {"from": target.power_state, "to": power.value})
        if new_kind != old_kind:
            if reading.error is None:
                result.recovered += 1
                self._event(session, target, "info",
                            f"BMC answers again (was {target.bmc_error})", {})
            else:
                self._event(session, target, "error", f"BMC error: {reading.error}",
                            {"kind": new_kind, "attempts": reading.attempts})

    def _event(self, session: Session, target: SyncTarget, kind: str, message: str,
               data: dict[str, Any]) -> None:
        event = events.record(session, node=None, kind=kind, actor=self.conductor,
                              message=message, data={"source": "power-sync", **data})
        event.node_id, event.node_name = target.node_id, target.name


def _needs_write(reading: Reading) -> bool:
    target = reading.target
    if reading.error != target.bmc_error:
        return True
    return (reading.power is not None and reading.power is not PowerState.UNKNOWN
            and reading.power.value != target.power_state)


def _text(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:300]


def _sync_power(name: str, hardware: HardwareType) -> PowerInterface:
    """The power interface the sweep uses: Redfish through a client of its own (a large
    connection cache, short timeouts, no sushy-level retries: the sweep retries)."""
    from metalfleet.drivers.redfish.power import RedfishPower

    if isinstance(hardware.power, RedfishPower):
        return _redfish_sync_power()
    return hardware.power


_redfish_power: PowerInterface | None = None
_redfish_lock = threading.Lock()


def _redfish_sync_power() -> PowerInterface:
    global _redfish_power
    with _redfish_lock:
        if _redfish_power is None:
            from metalfleet.drivers.redfish.client import RedfishClient
            from metalfleet.drivers.redfish.power import RedfishPower

            _redfish_power = RedfishPower(RedfishClient(
                read_timeout=10.0, connect_timeout=3.0, retries=1, retry_delay=0.2,
                cache_size=20000))
        return _redfish_power
