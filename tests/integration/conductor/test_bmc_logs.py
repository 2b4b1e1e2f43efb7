"""BMC log entries become node events, once each, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi.testclient import TestClient

from metalfleet.conductor.bmc_logs import FIRST_SWEEP_NEWEST, BmcLogSync
from metalfleet.conductor.power_sync import PowerSync
from metalfleet.drivers import fake
from metalfleet.drivers.base import NodeContext
from metalfleet.runtime import AppContext
from tests.conftest import fake_node


class LoggingBmc(fake.FakeManagement):
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.fail = False

    def log_entries(self, node: NodeContext) -> list[dict[str, Any]]:
        if self.fail:
            raise OSError("BMC went away")
        return list(self.entries)


def entry(number: int, message: str, severity: str = "warning") -> dict[str, Any]:
    return {"log": "SEL", "id": str(number), "time": f"2026-11-28T10:{number % 60:02d}:00Z",
            "severity": severity, "message": message}


def _bmc_log_events(client: TestClient) -> list[str]:
    return [e["message"] for e in client.get("/v1/nodes/n1/events").json()["items"]
            if e["kind"] == "bmc-log"]


def test_new_entries_become_events_once(client: TestClient, context: AppContext) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    bmc = LoggingBmc()
    hardware = dataclasses.replace(fake.hardware_type(), management=bmc)
    power = PowerSync(context.db, context.cipher, conductor="c1",
                      hardware_types=lambda _name: hardware, interval_s=0)
    sync = BmcLogSync(context.db, targets=power.targets, hardware_types=lambda _n: hardware,
                      conductor="c1", interval_s=0)

    bmc.entries = [entry(i, f"old event {i}", "info") for i in range(50)]
    assert sync.sweep() == FIRST_SWEEP_NEWEST, "first sight: only the newest entries"
    assert len(_bmc_log_events(client)) == FIRST_SWEEP_NEWEST

    assert sync.sweep() == 0, "nothing new: no events"
    bmc.entries.append(entry(50, "CPU 1 correctable ECC error", "warning"))
    bmc.entries.append(entry(51, "Fan 3 lower critical going low", "critical"))
    assert sync.sweep() == 2
    messages = _bmc_log_events(client)
    assert messages[-2:] == ["BMC SEL warning: CPU 1 correctable ECC error",
                             "BMC SEL critical: Fan 3 lower critical going low"]
    assert sync.sweep() == 0

    bmc.fail = True
    assert sync.sweep() == 0, "a failing BMC is skipped, not an error"
    assert len(_bmc_log_events(client)) == FIRST_SWEEP_NEWEST + 2
