"""The lab's in-band health loop: the agent's real checks on every lab node, into the engine.

A real node runs ``metalfleet-agent monitor``, which runs :func:`metalfleet.agent.health.run_checks`
on its own ``/`` and posts the report to the API. Lab nodes have no process of their own, so
inside ``metalfleet up --lab N`` this loop does the same for each lab node's synthetic root
every ``lab_health_interval_s`` and calls ``health.intake.report(..., source="agent",
checks_run=...)`` directly (actor ``lab-agent``).

Which nodes: those where an OS or the ramdisk would be running the agent and whose hardware
matters to the engine: ``active`` (the deployed OS), ``burning-in`` (the ramdisk), and, a lab
simplification, ``available`` and ``burnin-failed`` (on a real fleet an idle node is powered off
and checked when it next boots; in the lab its root is always there, and checking it is how a
repaired node in maintenance gets its signals cleared so that it is re-validated). Nodes being
deployed, released or cleaned keep their last signals.

Cheap for ``--lab 64``: one query a sweep; a GPU node's checks take 2-4 ms (45 small file
reads, the PCI scan cached). A sweep checks first the "hot" nodes (poked by a fault injected
or cleared through the API, or with findings last time), then the others round-robin until
``budget_s`` (default 10% of the interval) is spent: up to ~25 nodes every sweep, every node
at least every few seconds at ``--lab 64``. A node is reported when it has findings (repeat
sightings count as strikes), when its findings changed (a cleared fault clears the signal at
once), on its first check and every ``refresh_s``. :meth:`poke` runs a sweep at once.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import select

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.health import CheckReport, run_checks
from metalfleet.core.states import NodeState
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.health.findings import Finding
from metalfleet.lab.fleet import LAB_LABEL

log = logging.getLogger(__name__)

CHECKED_STATES = (NodeState.ACTIVE.value, NodeState.AVAILABLE.value,
                  NodeState.BURNING_IN.value, NodeState.BURNIN_FAILED.value)
ACTOR = "lab-agent"
SOURCE = "agent"
DEFAULT_REFRESH_S = 60.0


@dataclass
class SweepResult:
    checked: int = 0
    reported: int = 0
    failed: int = 0
    seconds: float = 0.0
    nodes: list[str] = field(default_factory=list)  # checked, in order


def _intake() -> ModuleType | None:
    """The health engine's intake, or None while it is not there (log once)."""
    try:
        return importlib.import_module("metalfleet.health.intake")
    except ImportError:
        return None


def expected_of(inventory: dict[str, Any] | None, gpu_count: int | None,
                ib_ports: int | None) -> dict[str, Any]:
    """What the node should have: its inspected inventory, at least what its class promises."""
    expected: dict[str, Any] = {"gpus": (inventory or {}).get("gpus") or [],
                                "infiniband": (inventory or {}).get("infiniband") or []}
    if gpu_count:
        expected["gpu_count"] = gpu_count
    if ib_ports:
        expected["ib_ports"] = ib_ports
    return expected


def _fingerprint(report: CheckReport) -> tuple[Any, ...]:
    return (tuple(sorted((f["check"], f["component"], f["severity"]) for f in report.findings)),
            tuple(sorted(report.checks_run)))


class HealthLoop:
    """Runs in its own thread; :meth:`sweep` is one pass (tests call it directly)."""

    def __init__(self, db: Database, *, interval_s: float = 1.0,
                 refresh_s: float = DEFAULT_REFRESH_S, budget_s: float | None = None,
                 wake: Callable[[], None] = lambda: None) -> None:
        self.db = db
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self.budget_s = interval_s / 10 if budget_s is None else budget_s
        self.wake = wake
        self.latest: dict[str, CheckReport] = {}  # node name -> its last report
        self._sent: dict[str, tuple[tuple[Any, ...], float]] = {}
        self._poked = threading.Event()
        self._hot: set[str] = set()
        self._hot_lock = threading.Lock()
        self._cursor = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    # -- running -----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lab-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def poke(self, node: str | None = None) -> None:
        """Sweep now; ``node`` (a fault was injected or cleared there) is checked first."""
        if node is not None:
            with self._hot_lock:
                self._hot.add(node)
        self._poked.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            result = SweepResult()
            try:
                result = self.sweep()
            except Exception:
                log.exception("lab health sweep failed; trying again next interval")
            pause = max(self.interval_s - result.seconds, 0.05)
            self._poked.wait(pause)
            self._poked.clear()

    # -- one pass ----------------------------------------------------------------------------

    def _targets(self) -> list[tuple[str, str, Path, dict[str, Any]]]:
        with self.db.session() as session:
            rows = session.execute(
                select(m.Node.id, m.Node.name, m.Node.driver_info, m.Node.inventory,
                       m.NodeClass.gpu_count, m.NodeClass.ib_ports)
                .outerjoin(m.NodeClass, m.Node.node_class_id == m.NodeClass.id)
                .where(m.Node.state.in_(CHECKED_STATES),
                       m.Node.labels[LAB_LABEL].as_string() == "true")
                .order_by(m.Node.name)).all()
        targets = []
        for node_id, name, driver_info, inventory, gpu_count, ib_ports in rows:
            root = (driver_info or {}).get("hardware_root")
            if root:
                targets.append((node_id, name, Path(root),
                                expected_of(inventory, gpu_count, ib_ports)))
        return targets

    def _due(self, name: str, report: CheckReport, now: float) -> bool:
        sent = self._sent.get(name)
        return (bool(report.findings) or sent is None or sent[0] != _fingerprint(report)
                or now - sent[1] >= self.refresh_s)

    def _this_sweep(self, targets: list[tuple[str, str, Path, dict[str, Any]]],
                    started: float) -> Iterator[tuple[str, str, Path, dict[str, Any]]]:
        """Hot nodes first, then round-robin from where the last sweep stopped, in budget."""
        with self._hot_lock:
            hot, self._hot = self._hot, set()
        hot |= {name for name, report in self.latest.items() if report.findings}
        done = set()
        for target in targets:
            if target[1] in hot:
                done.add(target[1])
                yield target
        count, start = len(targets), self._cursor
        moved = 0
        for step in range(count):
            if moved and time.monotonic() - started >= self.budget_s:
                return  # at least one node a sweep, so the round always goes on
            position = (start + step) % count
            if targets[position][1] not in done:
                self._cursor = position + 1
                moved += 1
                yield targets[position]

    def sweep(self) -> SweepResult:
        started = time.monotonic()
        result = SweepResult()
        intake = _intake()
        if intake is None and not self._warned:
            log.warning("metalfleet.health.intake is not installed: lab health checks run "
                        "but are not reported")
            self._warned = True
        for node_id, name, root, expected in self._this_sweep(self._targets(), started):
            report = run_checks(HardwareRoot(root), expected)
            self.latest[name] = report
            result.checked += 1
            result.nodes.append(name)
            now = time.monotonic()
            if intake is None or not self._due(name, report, now):
                continue
            try:
                with self.db.session() as session:
                    node = session.get(m.Node, node_id)
                    if node is None:
                        continue
                    intake.report(session, node, SOURCE,
                                  [Finding.from_dict(f) for f in report.findings],
                                  checks_run=report.checks_run, actor=ACTOR)
                self._sent[name] = (_fingerprint(report), now)
                result.reported += 1
            except Exception:
                result.failed += 1
                log.exception("reporting lab health of %s failed; retrying next sweep", name)
        if result.reported:
            self.wake()
        result.seconds = time.monotonic() - started
        return result
