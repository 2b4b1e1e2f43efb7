"""The running lab, as the API of the same process reaches it (``context.plugins["lab"]``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from metalfleet.core.errors import NotFoundError
from metalfleet.db import models as m
from metalfleet.lab.bmc_emulator import LabBmcEmulator
from metalfleet.lab.faults import FaultBook, LabNodeRef
from metalfleet.lab.fleet import LAB_LABEL
from metalfleet.lab.health_loop import HealthLoop
from metalfleet.runtime import AppContext

EXTRAS_KEY = "lab"
FAULTS_FILE = "faults.json"


@dataclass
class LabHandle:
    emulator: LabBmcEmulator
    faults: FaultBook
    health: HealthLoop | None = None

    def poke(self, node: str | None = None) -> None:
        """Something changed on a lab node: run the in-band checks now, not at the next tick."""
        if self.health is not None:
            self.health.poke(node)


def lab_of(extras: dict[str, Any]) -> LabHandle:
    """The lab of this process, or a 404 problem that says how to get one."""
    handle = extras.get(EXTRAS_KEY)
    if not isinstance(handle, LabHandle):
        raise NotFoundError("no lab is running in this process (start with metalfleet up "
                            "--lab N)")
    return handle


def lab_refs(context: AppContext) -> dict[str, LabNodeRef]:
    with context.db.session() as session:
        nodes = session.scalars(select(m.Node).where(
            m.Node.labels[LAB_LABEL].as_string() == "true")).all()
        return {node.name: LabNodeRef.of(node) for node in nodes
                if (node.driver_info or {}).get("hardware_root")}


def open_lab(context: AppContext, emulator: LabBmcEmulator, *,
             start_health: bool = True) -> LabHandle:
    """After the lab is built: put recorded faults back, start the health loop, publish."""
    faults = FaultBook(context.settings.data_dir / "lab" / FAULTS_FILE, emulator)
    faults.reapply(lab_refs(context))
    health = HealthLoop(context.db, interval_s=context.settings.lab_health_interval_s,
                        wake=context.wake_conductor)
    handle = LabHandle(emulator=emulator, faults=faults, health=health)
    if start_health:
        health.start()
    context.plugins[EXTRAS_KEY] = handle
    return handle


def close_lab(context: AppContext, handle: LabHandle) -> None:
    if context.plugins.get(EXTRAS_KEY) is handle:
        del context.plugins[EXTRAS_KEY]
    if handle.health is not None:
        handle.health.stop()
