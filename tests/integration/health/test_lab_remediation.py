"""On the lab fleet: a GPU fault injected on an allocated node ends with the node held for
repair with a ticket and its evidence, a spare deployed in its place in the same cluster,
and, once the fault is cleared, the node re-validated and back to available — no manual step.

The lab as `metalfleet up --lab` builds it (emulated Redfish BMCs, synthetic roots, the real
agent code for deploy, clean and burn-in); the lab's health loop runs the agent's real checks
and reports to the engine. Inspection is skipped as in tests/integration/lab/test_faults_api.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory
from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.lab.fleet import GPU_CLASS
from metalfleet.lab.handle import LabHandle, close_lab, open_lab
from metalfleet.lab.image import LAB_IMAGE_NAME
from metalfleet.lab.runner import build_lab, start_lab_bmcs
from metalfleet.runtime import AppContext
from tests.integration.health.test_remediation import members_of, node_row, tickets_of

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(context: AppContext, lab_enabled: object, live_server: str) -> Iterator[LabHandle]:
    emulator, server = start_lab_bmcs(context)
    emulator.power_delay = 0.1
    build_lab(context, 4, emulator, server)  # three GPU nodes, one CPU node
    with context.db.session() as session:
        for node in session.scalars(select(m.Node)):
            node.inventory = collect_inventory(HardwareRoot(node.driver_info["hardware_root"]))
        session.execute(update(m.Node).values(state="available"))
    handle = open_lab(context, emulator, start_health=False)  # swept by run() below
    assert handle.health is not None
    handle.health.budget_s = 60.0
    yield handle
    close_lab(context, handle)
    server.stop()


def run(conductor: Conductor, lab: LabHandle, done: Callable[[], bool],
        timeout: float = 120) -> None:
    """Conductor, health tick and the lab's health sweeps until ``done()``."""
    assert lab.health is not None
    sweep = lab.health.sweep

    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.to_thread(sweep)
            await conductor.tick()
            await asyncio.sleep(0.05)
            if not conductor._running and await asyncio.to_thread(done):
                await conductor.drain()
                return
            if time.monotonic() > deadline:
                await conductor.drain()
                raise AssertionError(f"not reached within {timeout} s")

    asyncio.run(loop())


def state(context: AppContext, name: str) -> str:
    return node_row(context, name).state


def test_gpu_fault_on_an_allocated_lab_node_is_replaced_and_the_node_returns(
    client: TestClient, context: AppContext, conductor: Conductor, lab: LabHandle,
) -> None:
    conductor.health.interval_s = 0.1
    client.post("/v1/tenants", json={"name": "acme"})
    r = client.post("/v1/clusters", json={"name": "train", "node_class": GPU_CLASS,
                                          "count": 2, "tenant": "acme", "scheduler": "none"})
    assert r.status_code == 201, r.text
    members = [n["name"] for n in r.json()["nodes"]]
    for name in members:
        r = client.post(f"/v1/nodes/{name}/actions/deploy", json={"image": LAB_IMAGE_NAME})
        assert r.status_code == 202, r.text
    run(conductor, lab, lambda: all(state(context, n) == "active" for n in members))

    failed = members[0]
    r = client.post("/v1/lab/faults", json={"node": failed, "kind": "gpu-xid",
                                            "component": "GPU3"})
    assert r.status_code == 201, r.text
    started = time.monotonic()
    run(conductor, lab, lambda: node_row(context, failed).maintenance, timeout=30)
    print(f"lab fault -> maintenance (drained, ticket, spare asked): "
          f"{time.monotonic() - started:.2f} s")
    [ticket] = tickets_of(context, failed)
    assert ticket.component == "GPU3" and ticket.cluster_name == "train"
    assert any(e["kind"] == "signal" and e["check"] == "gpu-xid" for e in ticket.evidence)
    spare = ticket.replacement_node
    assert spare is not None and spare not in members
    assert members_of(context, "train") == sorted([members[1], spare])

    run(conductor, lab, lambda: (state(context, spare), state(context, failed)) == (
        "active", "available"))
    assert client.get(f"/v1/nodes/{spare}").json()["image"] == LAB_IMAGE_NAME
    assert node_row(context, failed).maintenance

    r = client.delete(f"/v1/lab/faults/{failed}")
    assert r.status_code == 200, r.text
    run(conductor, lab, lambda: tickets_of(context, failed)[0].status == "resolved")
    node = node_row(context, failed)
    assert (node.state, node.maintenance, node.health) == ("available", False, "ok")
    resolution = tickets_of(context, failed)[0].resolution or ""
    assert resolution.startswith("re-validated: acceptance run"), resolution
