"""The lab fleet end to end in one process: Redfish BMCs, synthetic hardware, real agent code.

Nodes walk enrolled -> available on their own (autopilot + conductor), one deploys the lab
image (read back from its sparse disk), undeploys, and cleaning wipes the disk.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from metalfleet.conductor.worker import Conductor
from metalfleet.lab import autopilot
from metalfleet.lab.bmc_emulator import BmcServer, LabBmcEmulator
from metalfleet.lab.fleet import layout
from metalfleet.lab.image import LAB_IMAGE_FILE, LAB_IMAGE_NAME
from metalfleet.lab.runner import build_lab, start_lab_bmcs
from metalfleet.runtime import AppContext

pytestmark = pytest.mark.slow


@pytest.fixture
def lab(context: AppContext, live_server: str) -> Iterator[tuple[LabBmcEmulator, BmcServer]]:
    emulator, server = start_lab_bmcs(context)
    emulator.power_delay = 0.2
    build_lab(context, 3, emulator, server)
    yield emulator, server
    server.stop()


def run_until(context: AppContext, conductor: Conductor, client: TestClient,
              done: dict[str, str], timeout: float = 90) -> None:
    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while True:
            await asyncio.to_thread(autopilot.step, context.db)
            await conductor.tick()
            await asyncio.sleep(0.05)
            states = {n["name"]: n["state"] for n in client.get("/v1/nodes").json()["items"]}
            if all(states.get(name) == want for name, want in done.items()):
                await conductor.drain()
                return
            failed = {n: s for n, s in states.items() if s.endswith("-failed")}
            assert not failed, f"nodes failed: {failed}"
            assert time.monotonic() < deadline, f"not reached in {timeout} s: {states}"

    asyncio.run(loop())


def test_lab_nodes_become_available_then_deploy_and_clean(
    context: AppContext, client: TestClient, conductor: Conductor,
    lab: tuple[LabBmcEmulator, BmcServer],
) -> None:
    emulator, _ = lab
    names = [plan.name for plan in layout(3)]
    run_until(context, conductor, client, {name: "available" for name in names})

    gpu = client.get("/v1/nodes/lab-gpu-01").json()
    assert gpu["hardware_type"] == "lab" and gpu["bmc"]["driver"] == "redfish"
    assert len(gpu["inventory"]["gpus"]) == 8
    assert len(gpu["inventory"]["infiniband"]) == 8
    assert gpu["inventory"]["cpu"]["sockets"] == 2
    assert {p["mac"] for p in gpu["ports"]} == {n["mac"] for n in gpu["inventory"]["nics"]}
    assert gpu["power_state"] == "off"
    racks = {client.get(f"/v1/nodes/{name}").json()["rack"] for name in names}
    assert len(racks) == 2

    r = client.post("/v1/nodes/lab-gpu-01/actions/deploy", json={"image": LAB_IMAGE_NAME})
    assert r.status_code == 202
    run_until(context, conductor, client, {"lab-gpu-01": "active"})
    system = emulator.get(gpu["bmc"]["address"].rsplit("/", 1)[1])
    assert system is not None and system.power_state == "On"
    assert system.boot_target == "Hdd", "the node boots its disk after deploy"

    image = (context.settings.data_dir / "images" / LAB_IMAGE_FILE).read_bytes()
    root = context.settings.data_dir / "lab" / "nodes" / "lab-gpu-01" / "dev" / "nvme0n1"
    with root.open("rb") as handle:
        assert handle.read(len(image)) == image, "the disk holds the image byte for byte"

    assert client.post("/v1/nodes/lab-gpu-01/actions/undeploy").status_code == 202
    run_until(context, conductor, client, {"lab-gpu-01": "available"})
    with root.open("rb") as handle:
        head = handle.read(4 * 1024 * 1024)
    assert head.count(0) == len(head), "cleaning wiped the partition table and signatures"
    node = client.get("/v1/nodes/lab-gpu-01").json()
    assert node["image"] is None and node["power_state"] == "off"
    steps = [(e["from_state"], e["to_state"]) for e in
             client.get("/v1/nodes/lab-gpu-01/events").json()["items"] if e["kind"] == "transition"]
    assert steps[-5:] == [("available", "deploying"), ("deploying", "active"),
                          ("active", "releasing"), ("releasing", "cleaning"),
                          ("cleaning", "available")]


def test_checksum_mismatch_fails_deploy_with_reason(
    context: AppContext, client: TestClient, conductor: Conductor,
    lab: tuple[LabBmcEmulator, BmcServer],
) -> None:
    run_until(context, conductor, client, {"lab-gpu-02": "available"})
    image = client.get(f"/v1/images/{LAB_IMAGE_NAME}").json()
    bad = client.post("/v1/images", json={
        "name": "corrupt", "location": image["location"], "size_bytes": image["size_bytes"],
        "sha256": "0" * 64})
    assert bad.status_code == 201
    client.post("/v1/nodes/lab-gpu-02/actions/deploy", json={"image": "corrupt"})
    run_until_state(context, conductor, client, "lab-gpu-02", "deploy-failed")
    node = client.get("/v1/nodes/lab-gpu-02").json()
    assert "checksum mismatch" in node["last_error"]
    # A retry with the right image succeeds.
    client.post("/v1/nodes/lab-gpu-02/actions/deploy", json={"image": LAB_IMAGE_NAME})
    run_until_state(context, conductor, client, "lab-gpu-02", "active")


def test_wrong_bmc_password_fails_verify_with_bmc_error(
    context: AppContext, client: TestClient, conductor: Conductor,
    lab: tuple[LabBmcEmulator, BmcServer],
) -> None:
    node = client.get("/v1/nodes/lab-gpu-02").json()
    r = client.patch("/v1/nodes/lab-gpu-02", json={"bmc": {
        "driver": "redfish", "address": node["bmc"]["address"], "username": "admin",
        "password": "definitely-wrong"}})
    assert r.status_code == 200
    run_until_state(context, conductor, client, "lab-gpu-02", "verify-failed")
    node = client.get("/v1/nodes/lab-gpu-02").json()
    assert node["bmc"]["error"] and node["bmc"]["error"].startswith("auth_failed")
    assert "definitely-wrong" not in str(node)


def run_until_state(context: AppContext, conductor: Conductor, client: TestClient, name: str,
                    state: str, timeout: float = 90) -> None:
    async def loop() -> None:
        deadline = time.monotonic() + timeout
        while client.get(f"/v1/nodes/{name}").json()["state"] != state:
            await asyncio.to_thread(autopilot.step, context.db)
            await conductor.tick()
            await asyncio.sleep(0.05)
            assert time.monotonic() < deadline, f"{name} did not reach {state}"
        await conductor.drain()

    asyncio.run(loop())
