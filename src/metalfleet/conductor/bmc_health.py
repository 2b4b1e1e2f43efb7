"""BMC sensor health: fan, temperature and PSU sensors become health findings (source "bmc").

Every interval (``bmc_health_interval_s``: ``METALFLEET_BMC_HEALTH_INTERVAL_S``, default
60 s, the lab 5 s; 0 turns it off) the conductor reads the sensors of its share of idle
nodes through their drivers (``management.sensors``: Redfish Thermal/Power or Sensors, IPMI
SDR), with the same shard and node selection as power sync and a bounded pool with a
deadline per node. Nodes whose BMC already fails are skipped: power sync owns ``bmc_error``.

A sensor whose BMC status is Critical (or a temperature at or above its upper critical
threshold) is a critical finding, Warning a warning one. The node is reported to the health
engine (``health.intake.report``) with ``checks_run`` = the sensor checks read, so a sensor
back to OK clears its signal. A node with nothing wrong and no active BMC signal is not
reported at all: a healthy fleet costs one query per sweep, not one write per node.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from metalfleet.conductor.periodic import Periodic, interval_from_env
from metalfleet.conductor.power_sync import SyncTarget
from metalfleet.db import models as m
from metalfleet.db.health_models import HealthSignal
from metalfleet.db.session import Database
from metalfleet.drivers.base import HardwareType
from metalfleet.health.findings import Finding

log = logging.getLogger(__name__)

INTERVAL_ENV = "METALFLEET_BMC_HEALTH_INTERVAL_S"
DEFAULT_INTERVAL_S = 60.0
SOURCE = "bmc"
# sensor kind (drivers/redfish/telemetry.py, drivers/ipmi) -> health check name
# (IPMI's SDR types arrive lowercased: "fan", "temperature", "power supply")
CHECKS = {"fan": "fan", "temperature": "thermal", "power": "psu", "power supply": "psu"}
_SEVERITY = {"critical": "critical", "warning": "warning"}


def _severity(sensor: dict[str, Any]) -> str | None:
    severity = _SEVERITY.get(str(sensor.get("health") or "").lower())
    reading, limit = sensor.get("reading"), sensor.get("upper_critical")
    if (sensor.get("kind") == "temperature" and isinstance(reading, (int, float))
            and isinstance(limit, (int, float)) and limit > 0 and reading >= limit):
        return "critical"
    return severity


def findings_from_sensors(sensors: list[dict[str, Any]]) -> tuple[list[Finding], list[str]]:
    """(findings, checks run) for one node's sensor readings; the worst per component."""
    checks_run: set[str] = set()
    worst: dict[tuple[str, str], Finding] = {}
    for sensor in sensors:
        check = CHECKS.get(str(sensor.get("kind") or ""))
        if check is None:
            continue
        checks_run.add(check)
        severity = _severity(sensor)
        if severity is None:
            continue
        name = str(sensor.get("name") or sensor.get("kind"))[:127]
        reading, unit = sensor.get("reading"), sensor.get("unit") or ""
        shown = f" ({reading:g} {unit})".rstrip() if isinstance(reading, (int, float)) else ""
        finding = Finding(
            check=check, component=name, severity=severity,
            message=f"BMC sensor {name}{shown} is {sensor.get('health') or severity}",
            evidence={key: sensor.get(key) for key in ("kind", "reading", "unit", "health",
                                                       "upper_critical")},
        )
        key = (check, name)
        if key not in worst or (severity == "critical" and worst[key].severity != "critical"):
            worst[key] = finding
    return list(worst.values()), sorted(checks_run)


@dataclass
class HealthSweepResult:
    nodes: int = 0
    read: int = 0
    failed_reads: int = 0
    reported: list[str] = field(default_factory=list)
    findings: int = 0
    seconds: float = 0.0


class BmcHealthSweep(Periodic[HealthSweepResult]):
    """One conductor's BMC sensor sweep. ``sweep()`` blocks (call it from a thread)."""

    def __init__(self, db: Database, *, targets: Callable[[], list[SyncTarget]],
                 hardware_types: Callable[[str], HardwareType], conductor: str,
                 interval_s: float | None = None, workers: int = 16,
                 call_timeout_s: float = 30.0) -> None:
        self.db = db
        self.targets = targets
        self.hardware_types = hardware_types
        self.conductor = conductor
        super().__init__(interval_from_env(INTERVAL_ENV, DEFAULT_INTERVAL_S)
                         if interval_s is None else interval_s)
        self.workers = workers
        self.call_timeout_s = call_timeout_s
        self._warned = False

    def sweep(self) -> HealthSweepResult:
        started = time.monotonic()
        result = HealthSweepResult()
        intake = self._intake()
        if intake is None:
            return result
        targets = [t for t in self.targets() if not t.bmc_error]
        result.nodes = len(targets)
        readings: dict[str, tuple[list[Finding], list[str]]] = {}
        pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bmc-health")
        try:
            futures = {pool.submit(self._read, t): t for t in targets}
            deadline = time.monotonic() + self.call_timeout_s
            for future, target in futures.items():
                try:
                    sensors = future.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception as exc:  # power sync owns bmc_error; here we only log
                    log.info("BMC sensors of %s not read: %s", target.name, exc)
                    result.failed_reads += 1
                    continue
                result.read += 1
                readings[target.node_id] = findings_from_sensors(sensors)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        flagged = self._active_bmc_signals(list(readings))
        for target in targets:
            found = readings.get(target.node_id)
            if found is None or not found[1]:
                continue  # no sensor of a kind we check: say nothing, clear nothing
            findings, checks_run = found
            if not findings and target.node_id not in flagged:
                continue
            with self.db.session() as session:
                node = session.get(m.Node, target.node_id)
                if node is None:
                    continue
                intake.report(session, node, SOURCE, findings, checks_run=checks_run,
                              actor=self.conductor)
            result.reported.append(target.name)
            result.findings += len(findings)
        result.seconds = round(time.monotonic() - started, 3)
        if result.findings or result.failed_reads:  # the signals themselves are node events
            log.debug("BMC health on %s: %d nodes in %.1f s, %d findings, %d reads failed",
                     self.conductor, result.nodes, result.seconds, result.findings,
                     result.failed_reads)
        return result

    def _intake(self) -> Any:
        try:
            from metalfleet.health import intake
        except ImportError:  # the health engine is not installed in this build
            if not self._warned:
                log.warning("BMC health sweep: metalfleet.health.intake is missing; skipping")
                self._warned = True
            return None
        return intake

    def _read(self, target: SyncTarget) -> list[dict[str, Any]]:
        return self.hardware_types(target.hardware_type).management.sensors(target.ctx)

    def _active_bmc_signals(self, node_ids: list[str]) -> set[str]:
        if not node_ids:
            return set()
        with self.db.session() as session:
            return set(session.scalars(
                select(HealthSignal.node_id).distinct()
                .where(HealthSignal.source == SOURCE, HealthSignal.status == "active")))
