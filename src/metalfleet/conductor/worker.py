"""The conductor: finds nodes with work to do, reserves them and runs their flows.

The database is the queue. The API only records a request (a node enters a work state, or
gets a target power state); any conductor process polls for such nodes, takes one with a
conditional UPDATE, runs the flow in a worker thread (drivers block on BMCs and disks) and
records the outcome. In one process the API wakes the conductor at once; across processes
the poll interval bounds the delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from metalfleet.conductor import reservation
from metalfleet.conductor.agent_channel import DbAgentChannel
from metalfleet.conductor.bmc_health import BmcHealthSweep
from metalfleet.conductor.bmc_logs import BmcLogSync
from metalfleet.conductor.context import node_context
from metalfleet.conductor.flows import power_to, run_flow, wait_power
from metalfleet.conductor.port_sweep import PortSweep
from metalfleet.conductor.power_sync import PowerSync
from metalfleet.core.errors import DriverError, MetalfleetError
from metalfleet.core.states import WORK_STATES, NodeState, PowerState
from metalfleet.db import models as m
from metalfleet.db.base import utcnow
from metalfleet.db.session import Database
from metalfleet.drivers.base import HardwareType
from metalfleet.drivers.registry import get_hardware_type
from metalfleet.health.ticker import HealthTicker
from metalfleet.inventory import events, lifecycle
from metalfleet.network import port_moves
from metalfleet.secrets import CredentialCipher

log = logging.getLogger(__name__)

WORK_STATE_VALUES = [state.value for state in WORK_STATES]


def default_conductor_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Conductor:
    def __init__(
        self,
        db: Database,
        cipher: CredentialCipher,
        *,
        name: str | None = None,
        workers: int = 8,
        poll_interval_s: float = 1.0,
        heartbeat_interval_s: float = 5.0,
        dead_after_s: float = 30.0,
        hardware_types: Callable[[str], HardwareType] = get_hardware_type,
        agent_heartbeat_timeout_s: float = 30.0,
        bmc_health_interval_s: float | None = None,
        health_tick_s: float | None = None,
        port_sweep_s: float | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.name = name or default_conductor_name()
        self.workers = workers
        self.poll_interval_s = poll_interval_s
        self.heartbeat_interval_s = heartbeat_interval_s
        self.dead_after_s = dead_after_s
        self.hardware_types = hardware_types
        self.agent_heartbeat_timeout_s = agent_heartbeat_timeout_s
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._last_heartbeat = 0.0
        self.power_sync = PowerSync(db, cipher, conductor=self.name,
                                    hardware_types=hardware_types, dead_after_s=dead_after_s)
        self._power_sync_task: asyncio.Task[Any] | None = None
        self.bmc_logs = BmcLogSync(db, targets=self.power_sync.targets,
                                   hardware_types=hardware_types, conductor=self.name)
        self._bmc_log_task: asyncio.Task[Any] | None = None
        self.bmc_health = BmcHealthSweep(db, targets=self.power_sync.targets,
                                         hardware_types=hardware_types, conductor=self.name,
                                         interval_s=bmc_health_interval_s)
        self._bmc_health_task: asyncio.Task[Any] | None = None
        self.health = HealthTicker(db, conductor=self.name, interval_s=health_tick_s)
        self._health_task: asyncio.Task[Any] | None = None
        self.port_sweep = PortSweep(db, cipher, conductor=self.name,
                                    shard=self.power_sync.shard, interval_s=port_sweep_s)
        self._port_sweep_task: asyncio.Task[Any] | None = None

    # -- public ---------------------------------------------------------------------------

    def wake(self) -> None:
        """Look for work now rather than at the next poll (safe from any thread)."""
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._heartbeat)
        log.info("conductor %s started with %d workers", self.name, self.workers)
        try:
            while not self._stopping:
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                self._wake.clear()
        finally:
            await self.drain()

    async def tick(self) -> None:
        """One round: heartbeat, recover dead conductors' nodes, start new work."""
        now = time.monotonic()
        if now - self._last_heartbeat >= self.heartbeat_interval_s:
            await asyncio.to_thread(self._heartbeat)
            recovered = await asyncio.to_thread(self._recover)
            if recovered:
                log.warning("recovered nodes of dead conductors: %s", ", ".join(recovered))
        self._start_power_sync()
        self._start_bmc_log_sync()
        self._start_bmc_health_sweep()
        self._start_health_tick()
        self._start_port_sweep()
        free = self.workers - len(self._running)
        if free <= 0:
            return
        for node_id, kind in await asyncio.to_thread(self._claim, free):
            task = asyncio.create_task(self._execute(node_id, kind))
            self._running.add(task)
            task.add_done_callback(self._task_done)

    async def drain(self) -> None:
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    def stop(self) -> None:
        self._stopping = True
        self.wake()

    def unregister(self) -> None:
        with self.db.session() as session:
            reservation.unregister(session, self.name)

    # -- internals ------------------------------------------------------------------------

    def _start_power_sync(self) -> None:
        """Start a power-sync sweep in a thread when one is due (see conductor/power_sync)."""
        if self.power_sync.due() and (self._power_sync_task is None
                                      or self._power_sync_task.done()):
            self._power_sync_task = asyncio.create_task(
                asyncio.to_thread(self.power_sync.run_once))

    def _start_bmc_log_sync(self) -> None:
        """Start a BMC log sweep in a thread when one is due (see conductor/bmc_logs)."""
        if self.bmc_logs.due() and (self._bmc_log_task is None or self._bmc_log_task.done()):
            self._bmc_log_task = asyncio.create_task(asyncio.to_thread(self.bmc_logs.run_once))

    def _start_bmc_health_sweep(self) -> None:
        """Start a BMC sensor health sweep in a thread when one is due (conductor/bmc_health)."""
        if self.bmc_health.due() and (self._bmc_health_task is None
                                      or self._bmc_health_task.done()):
            self._bmc_health_task = asyncio.create_task(
                asyncio.to_thread(self.bmc_health.run_once))

    def _start_health_tick(self) -> None:
        """Expire first strikes, walk repair tickets to re-validation (health/engine.tick)."""
        if self.health.due() and (self._health_task is None or self._health_task.done()):
            self._health_task = asyncio.create_task(asyncio.to_thread(self.health.run_once))

    def _start_port_sweep(self) -> None:
        """Put switch ports back where the lifecycle wants them (conductor/port_sweep)."""
        if self.port_sweep.due() and (self._port_sweep_task is None
                                      or self._port_sweep_task.done()):
            self._port_sweep_task = asyncio.create_task(
                asyncio.to_thread(self.port_sweep.run_once))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._wake.set()  # a worker is free: look for more work at once

    def _heartbeat(self) -> None:
        self._last_heartbeat = time.monotonic()
        with self.db.session() as session:
            reservation.heartbeat(session, self.name)

    def _recover(self) -> list[str]:
        with self.db.session() as session:
            return reservation.recover_dead(session, me=self.name, dead_after_s=self.dead_after_s)

    def _claim(self, limit: int) -> list[tuple[str, str]]:
        """Reserve up to ``limit`` nodes that have work; returns (node id, work kind)."""
        with self.db.session() as session:
            candidates = session.execute(
                select(m.Node.id, m.Node.state, m.Node.target_power_state)
                .where(
                    m.Node.reservation.is_(None),
                    (m.Node.state.in_(WORK_STATE_VALUES))
                    | (m.Node.target_power_state.is_not(None)),
                )
                .order_by(m.Node.state_changed_at)
                .limit(limit * 4)
            ).all()
        claimed: list[tuple[str, str]] = []
        for node_id, state, target_power in candidates:
            if len(claimed) >= limit:
                break
            with self.db.session() as session:
                if not reservation.reserve(session, node_id, self.name):
                    continue  # another conductor was faster
            kind = state if state in WORK_STATE_VALUES else f"power:{target_power}"
            claimed.append((node_id, kind))
        return claimed

    async def _execute(self, node_id: str, kind: str) -> None:
        try:
            if kind.startswith("power:"):
                await asyncio.to_thread(self._run_power, node_id, kind.split(":", 1)[1])
            else:
                await asyncio.to_thread(self._run_flow, node_id, NodeState(kind))
        except Exception:  # the node must never stay reserved by a crashed task
            log.exception("conductor task %s on node %s crashed", kind, node_id)
            with self.db.session() as session:
                reservation.release(session, node_id, self.name)

    def _progress(self, node_id: str) -> Callable[[int, str], None]:
        last: dict[str, Any] = {"percent": -1, "step": None, "at": 0.0}

        def report(percent: int, step: str) -> None:
            now = time.monotonic()
            if step == last["step"] and (percent == last["percent"] or now - last["at"] < 0.25):
                return
            last.update(percent=percent, step=step, at=now)
            with self.db.session() as session:
                session.execute(
                    update(m.Node)
                    .where(m.Node.id == node_id, m.Node.reservation == self.name)
                    .values(progress_percent=percent, progress_step=step[:255])
                    .execution_options(synchronize_session=False)
                )

        return report

    def _run_flow(self, node_id: str, state: NodeState) -> None:
        with self.db.session() as session:
            node = session.get(m.Node, node_id)
            if node is None or node.state != state.value:
                reservation.release(session, node_id, self.name)
                return
            ctx = node_context(node, self.cipher, self._progress(node_id))
            ctx.move_ports = port_moves.mover(self.db, self.cipher, node_id, self.name)
            ctx.agent = DbAgentChannel(self.db, node_id, since=utcnow(),
                                       heartbeat_timeout_s=self.agent_heartbeat_timeout_s)
            hardware_type = node.hardware_type
            events.record(session, node=node, kind="info", actor=self.name,
                          message=f"{state.value} started on conductor {self.name}")
        started = time.monotonic()
        updates: dict[str, Any] = {}
        error: str | None = None
        try:
            hw = self.hardware_types(hardware_type)
            updates = run_flow(self.db, node_id, state, ctx, hw)
        except DriverError as exc:
            error = exc.detail
            if exc.extra.get("kind"):
                updates["bmc_error"] = f"{exc.extra['kind']}: {exc.detail}"
        except MetalfleetError as exc:
            error = exc.detail
        except Exception as exc:
            log.exception("%s of node %s failed unexpectedly", state.value, ctx.name)
            error = f"internal error ({type(exc).__name__}: {exc}); see the conductor log"
        with self.db.session() as session:
            node = lifecycle.finish_work(
                session, node_id, conductor=self.name, succeeded=error is None,
                error=error, updates=updates,
            )
            node.driver_info = {**(node.driver_info or {}),
                                f"last_{state.value}_s": round(time.monotonic() - started, 2)}

    def _run_power(self, node_id: str, target: str) -> None:
        with self.db.session() as session:
            node = session.get(m.Node, node_id)
            if node is None:
                return
            ctx = node_context(node, self.cipher)
            hardware_type = node.hardware_type
        error: str | None = None
        new_power: str | None = None
        try:
            hw = self.hardware_types(hardware_type)
            if target == "reboot":
                hw.power.reboot(ctx)
                wait_power(ctx, hw, PowerState.ON)
                new_power = PowerState.ON.value
            else:
                power_to(ctx, hw, PowerState(target))
                new_power = target
        except MetalfleetError as exc:
            error = exc.detail
        with self.db.session() as session:
            node = session.get(m.Node, node_id, populate_existing=True)
            if node is None:
                return
            node.target_power_state = None
            node.reservation = None
            node.reserved_at = None
            node.updated_at = utcnow()
            if error is None:
                node.power_state = new_power or node.power_state
                node.bmc_error = None
                events.record(session, node=node, kind="power", actor=self.name,
                              message=f"power {target} done")
            else:
                node.bmc_error = error
                events.record(session, node=node, kind="error", actor=self.name,
                              message=f"power {target} failed: {error}")
