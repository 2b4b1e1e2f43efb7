"""BMC sensor health: the lab's Redfish BMCs read through the production driver, findings
reported to the health engine, cleared when the sensor is fine again (SQLite and PostgreSQL).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from metalfleet.conductor.bmc_health import BmcHealthSweep, findings_from_sensors
from metalfleet.conductor.power_sync import PowerSync
from metalfleet.conductor.worker import Conductor
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.drivers.registry import get_hardware_type
from metalfleet.lab.bmc_emulator import BmcServer, LabBmcEmulator
from metalfleet.lab.fleet import ensure_nodes, ensure_topology, layout
from metalfleet.lab.runner import start_lab_bmcs
from metalfleet.runtime import AppContext

LabRig = tuple[LabBmcEmulator, BmcServer, dict[str, str]]  # names -> BMC system ids


@pytest.fixture
def lab(context: AppContext) -> Iterator[LabRig]:
    emulator, server = start_lab_bmcs(context)
    with context.db.session() as session:
        ensure_topology(session, 2)
    with context.db.session() as session:
        ensure_nodes(session, 2, emulator, server.system_address,
                     context.settings.data_dir / "lab" / "nodes", context.cipher)
    yield emulator, server, {plan.name: plan.system_id for plan in layout(2)}
    server.stop()


def _sweep(context: AppContext, name: str = "c1") -> BmcHealthSweep:
    power = PowerSync(context.db, context.cipher, conductor=name,
                      hardware_types=get_hardware_type, interval_s=0)
    return BmcHealthSweep(context.db, targets=power.targets, hardware_types=get_hardware_type,
                          conductor=name, interval_s=0)


def _signals(context: AppContext, status: str = "active") -> list[tuple[str, str, str, str]]:
    with context.db.session() as session:
        rows = session.execute(
            select(m.Node.name, hm.HealthSignal.check, hm.HealthSignal.component,
                   hm.HealthSignal.severity)
            .join(m.Node, m.Node.id == hm.HealthSignal.node_id)
            .where(hm.HealthSignal.source == "bmc", hm.HealthSignal.status == status)
            .order_by(m.Node.name, hm.HealthSignal.check))
        return [tuple(row) for row in rows]  # type: ignore[misc]


def _health(context: AppContext, name: str) -> str:
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == name))
        assert node is not None
        return node.health


def test_critical_fan_becomes_a_bmc_finding_and_clears(context: AppContext, lab: LabRig) -> None:
    emulator, _, systems = lab
    sweep = _sweep(context)

    quiet = sweep.sweep()
    assert quiet.nodes == 2 and quiet.read == 2 and quiet.failed_reads == 0
    assert quiet.reported == [], "a healthy fleet is not reported node by node"
    assert _signals(context) == []

    emulator.set_sensor(systems["lab-gpu-01"], "FAN3", reading=0.0, health="Critical")
    result = sweep.sweep()
    assert result.reported == ["lab-gpu-01"] and result.findings == 1
    assert _signals(context) == [("lab-gpu-01", "fan", "FAN3", "critical")]
    assert _health(context, "lab-gpu-01") == "failed"
    assert _health(context, "lab-gpu-02") == "ok"

    sweep.sweep()  # seen again: still one signal (its strikes grow)
    assert _signals(context) == [("lab-gpu-01", "fan", "FAN3", "critical")]

    emulator.set_sensor(systems["lab-gpu-01"], "FAN3", reading=9800.0, health="OK")
    result = sweep.sweep()
    assert result.reported == ["lab-gpu-01"], "an active signal is re-reported to clear it"
    assert _signals(context) == []
    assert _signals(context, "cleared") == [("lab-gpu-01", "fan", "FAN3", "critical")]
    assert sweep.sweep().reported == []


def test_temperature_over_its_critical_threshold(context: AppContext, lab: LabRig) -> None:
    emulator, _, systems = lab
    emulator.set_sensor(systems["lab-gpu-02"], "CPU1 Temp", reading=99.0)  # status still OK
    emulator.set_sensor(systems["lab-gpu-01"], "Inlet Temp", reading=40.0, health="Warning")
    _sweep(context).sweep()
    assert _signals(context) == [("lab-gpu-01", "thermal", "Inlet Temp", "warning"),
                                 ("lab-gpu-02", "thermal", "CPU1 Temp", "critical")]


def test_nodes_with_a_failing_bmc_are_left_to_power_sync(context: AppContext,
                                                         lab: LabRig) -> None:
    emulator, _, systems = lab
    emulator.set_sensor(systems["lab-gpu-01"], "FAN1", health="Critical")
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "lab-gpu-01"))
        assert node is not None
        node.bmc_error = "unreachable: timed out"
    result = _sweep(context).sweep()
    assert result.nodes == 1 and _signals(context) == []


def test_conductor_runs_the_sweep_on_its_interval(context: AppContext, lab: LabRig) -> None:
    emulator, _, systems = lab
    emulator.set_sensor(systems["lab-gpu-02"], "FAN6", reading=0.0, health="Critical")
    conductor = Conductor(context.db, context.cipher, name="c1", bmc_health_interval_s=0.05)
    assert conductor.bmc_health.interval_s == 0.05
    async def until_reported() -> None:
        deadline = time.monotonic() + 20
        while not _signals(context):
            assert time.monotonic() < deadline, "the conductor never swept the BMC sensors"
            await conductor.tick()
            await asyncio.sleep(0.05)
        if conductor._bmc_health_task is not None:
            await conductor._bmc_health_task

    asyncio.run(until_reported())
    assert _signals(context) == [("lab-gpu-02", "fan", "FAN6", "critical")]


def test_findings_from_sensors_keeps_the_worst_and_ignores_other_kinds() -> None:
    sensors: list[dict[str, Any]] = [
        {"kind": "fan", "name": "FAN1", "reading": 0, "unit": "RPM", "health": "Warning"},
        {"kind": "fan", "name": "FAN1", "reading": 0, "unit": "RPM", "health": "Critical"},
        {"kind": "fan", "name": "FAN2", "reading": 9000, "unit": "RPM", "health": "OK"},
        {"kind": "power", "name": "PSU2", "reading": None, "unit": "W", "health": "Critical"},
        {"kind": "voltage", "name": "12V", "reading": 9.0, "unit": "V", "health": "Critical"},
        {"kind": "power supply", "name": "PS1 Status", "reading": None, "unit": None,
         "health": "Warning"},  # as the IPMI driver reads the SDR
        {"kind": "temperature", "name": "GPU1 Temp", "reading": 70, "unit": "Cel",
         "health": None, "upper_critical": 0},
    ]
    findings, checks_run = findings_from_sensors(sensors)
    assert checks_run == ["fan", "psu", "thermal"]
    assert sorted((f.check, f.component, f.severity) for f in findings) == [
        ("fan", "FAN1", "critical"), ("psu", "PS1 Status", "warning"),
        ("psu", "PSU2", "critical")]
    fan = next(f for f in findings if f.check == "fan")
    assert fan.message == "BMC sensor FAN1 (0 RPM) is Critical"
    assert fan.evidence["reading"] == 0 and fan.evidence["health"] == "Critical"
