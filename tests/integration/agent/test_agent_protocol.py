"""The agent protocol end to end over real HTTP: nodes whose 'power on' fetches the node's
iPXE script and boots an agent thread with its kernel parameters on a synthetic hardware
root (a stand-in for a ramdisk on a real machine).

The conductor drives them through the same flows as real servers: wait for the agent's
lookup (with the boot secret from the iPXE script), hand it commands, watch its heartbeats.
The hardware roots are the test's own (by node name): driver_info.hardware_root is a lab
shortcut, refused outside a --lab process.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from metalfleet.agent.boot import parse_cmdline
from metalfleet.agent.daemon import Agent
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.conductor.worker import Conductor
from metalfleet.core.states import PowerState
from metalfleet.drivers import agent_remote, fake
from metalfleet.drivers.base import HardwareType, NodeContext
from metalfleet.lab.synthetic_hardware import build_root, cpu_node_spec
from metalfleet.runtime import AppContext
from tests.conftest import drive

pytestmark = pytest.mark.slow


class SimulatedMachines(fake.FakePower):
    """Power on boots an agent on the node's hardware root; power off kills it."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.roots: dict[str, Path] = {}  # node name -> its synthetic hardware root
        self.agents: dict[str, tuple[Agent, threading.Thread]] = {}
        self.hold_write = threading.Event()  # set: the next write_image hangs forever

    def _kill(self, node: NodeContext) -> None:
        running = self.agents.pop(node.uuid, None)
        if running is not None:
            running[0].stop.set()
            running[1].join(timeout=5)

    def _boot(self, node: NodeContext) -> None:
        self._kill(node)
        script = httpx.get(f"{self.api_url}/v1/boot/ipxe", params={"mac": node.macs[0]}).text
        kernel = next(line for line in script.splitlines() if line.startswith("kernel "))
        params = parse_cmdline(kernel)
        agent = Agent(params["api"], HardwareRoot(self.roots[node.name]), lookup_retry_s=0.2,
                      boot_secret=params.get("boot_secret"))
        agent.interval = 0.2
        if self.hold_write.is_set():
            original = agent._run

            def die_on_write(command: dict[str, Any]) -> None:
                if command["name"] == "write_image":
                    agent.stop.set()  # the machine dies as the write starts: no more heartbeats
                    return
                original(command)

            agent._run = die_on_write  # type: ignore[method-assign]
        thread = threading.Thread(target=agent.serve, daemon=True)
        thread.start()
        self.agents[node.uuid] = (agent, thread)

    def set_power_state(self, node: NodeContext, state: PowerState, *, soft: bool = False) -> None:
        super().set_power_state(node, state, soft=soft)
        if state is PowerState.ON:
            self._boot(node)
        else:
            self._kill(node)

    def reboot(self, node: NodeContext) -> None:
        super().set_power_state(node, PowerState.ON)
        self._boot(node)


@pytest.fixture
def machines(live_server: str) -> Iterator[SimulatedMachines]:
    simulated = SimulatedMachines(live_server)
    yield simulated
    for agent, thread in list(simulated.agents.values()):
        agent.stop.set()
        thread.join(timeout=5)


@pytest.fixture
def agent_conductor(context: AppContext, machines: SimulatedMachines) -> Conductor:
    hw = HardwareType(
        name="simulated", power=machines, boot=fake.FakeBoot(),
        management=fake.FakeManagement(), inspect=agent_remote.AgentRemoteInspect(),
        burn_in=agent_remote.AgentRemoteBurnIn(), deploy=agent_remote.AgentRemoteDeploy(),
        clean=agent_remote.AgentRemoteClean(),
    )
    return Conductor(context.db, context.cipher, name="agent-conductor", workers=4,
                     poll_interval_s=0.05, hardware_types=lambda name: hw,
                     agent_heartbeat_timeout_s=6.0)  # 3 missed heartbeats (every 2 s)


def _state(client: TestClient, name: str) -> str:
    return str(client.get(f"/v1/nodes/{name}").json()["state"])


def _enrol(client: TestClient, machines: SimulatedMachines, tmp_path: Path, name: str,
           index: int) -> Path:
    spec = cpu_node_spec(index)
    root = build_root(tmp_path / name, spec)
    machines.roots[name] = root
    body = {"name": name, "hardware_type": "fake",
            "bmc": {"driver": "fake", "address": f"fake://{name}"},
            "driver_info": {"agent_boot_timeout_s": 20, "burn_in_seconds": 0.3},
            "ports": [{"name": nic.name, "mac": nic.mac, "pxe": i == 0}
                      for i, nic in enumerate(spec.nics)]}
    assert client.post("/v1/nodes", json=body).status_code == 201
    return root / "dev" / spec.disk.name


def _image(client: TestClient, context: AppContext, live_server: str, name: str,
           sha: str | None = None) -> bytes:
    data = bytes(range(256)) * 4096 * 3  # 3 MiB, not all zeros
    (context.settings.data_dir / "images" / f"{name}.raw").write_bytes(data)
    body = {"name": name, "location": f"{live_server}/images/{name}.raw",
            "sha256": sha or hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    assert client.post("/v1/images", json=body).status_code == 201
    return data


def _walk(client: TestClient, conductor: Conductor, name: str, action: str, want: str,
          body: dict[str, Any] | None = None) -> None:
    r = client.post(f"/v1/nodes/{name}/actions/{action}", json=body or {})
    assert r.status_code == 202, r.text
    drive(conductor, lambda: _state(client, name) in (want, f"{want}-failed")
          or _state(client, name).endswith("-failed"), timeout=60)


def test_agent_inspects_deploys_and_cleans(
    client: TestClient, context: AppContext, agent_conductor: Conductor,
    machines: SimulatedMachines, live_server: str, tmp_path: Path,
) -> None:
    disk = _enrol(client, machines, tmp_path, "n1", 1)
    image = _image(client, context, live_server, "img")
    for action, want in (("manage", "manageable"), ("inspect", "inspected"),
                         ("provide", "available")):
        _walk(client, agent_conductor, "n1", action, want)
        assert _state(client, "n1") == want, client.get("/v1/nodes/n1").json()["last_error"]
    node = client.get("/v1/nodes/n1").json()
    assert {n["mac"] for n in node["inventory"]["nics"]} == {p["mac"] for p in node["ports"]}
    _walk(client, agent_conductor, "n1", "deploy", "active", {"image": "img"})
    assert _state(client, "n1") == "active", client.get("/v1/nodes/n1").json()["last_error"]
    with disk.open("rb") as handle:
        assert handle.read(len(image)) == image
    _walk(client, agent_conductor, "n1", "undeploy", "available")
    assert _state(client, "n1") == "available"
    with disk.open("rb") as handle:
        head = handle.read(4 * 1024 * 1024)
    assert head.count(0) == len(head)
    kinds = [e["message"] for e in client.get("/v1/nodes/n1/events").json()["items"]
             if e["kind"] == "agent"]
    assert len(kinds) >= 4, "the agent looked up for inspect, burn-in, deploy and clean"


def test_checksum_mismatch_and_dead_agent_fail_deploy_then_retry_succeeds(
    client: TestClient, context: AppContext, agent_conductor: Conductor,
    machines: SimulatedMachines, live_server: str, tmp_path: Path,
) -> None:
    _enrol(client, machines, tmp_path, "n2", 2)
    _image(client, context, live_server, "good")
    _image(client, context, live_server, "bad", sha="0" * 64)
    for action, want in (("manage", "manageable"), ("inspect", "inspected"),
                         ("provide", "available")):
        _walk(client, agent_conductor, "n2", action, want)
    _walk(client, agent_conductor, "n2", "deploy", "active", {"image": "bad"})
    node = client.get("/v1/nodes/n2").json()
    assert node["state"] == "deploy-failed" and "checksum mismatch" in node["last_error"]

    machines.hold_write.set()
    _walk(client, agent_conductor, "n2", "deploy", "active", {"image": "good"})
    node = client.get("/v1/nodes/n2").json()
    assert node["state"] == "deploy-failed"
    assert "stopped heartbeating" in node["last_error"] and "write_image" in node["last_error"]

    machines.hold_write.clear()
    _walk(client, agent_conductor, "n2", "deploy", "active", {"image": "good"})
    assert _state(client, "n2") == "active"


def test_lookup_and_heartbeat_refuse_strangers(client: TestClient,
                                               machines: SimulatedMachines,
                                               tmp_path: Path) -> None:
    _enrol(client, machines, tmp_path, "n3", 3)
    unknown = client.post("/v1/agent/lookup", json={"macs": ["52:54:00:99:99:99"]})
    mac = client.get("/v1/nodes/n3").json()["ports"][0]["mac"]
    known = client.post("/v1/agent/lookup", json={"macs": [mac]})
    # The same answer either way: a stranger learns neither that the MAC is known nor the
    # node's name or state.
    for r in (unknown, known):
        assert r.status_code == 401 and "boot_secret" in r.json()["detail"]
        assert "n3" not in r.text and "enrolled" not in r.text
    assert unknown.json()["detail"] == known.json()["detail"]
    r = client.post("/v1/agent/heartbeat/n3", json={}, headers={"X-Agent-Token": "guess"})
    assert r.status_code == 401
