"""Discovery of unknown machines: the iPXE answer, the agent's discovery lookup, the node it
creates (no BMC: verify asks for one), and the agent's discover mode over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from metalfleet.agent.daemon import Agent
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.inventory import discovery, events
from metalfleet.inventory.discovery import DISCOVERED_LABEL
from metalfleet.lab.synthetic_hardware import build_root, cpu_node_spec
from metalfleet.runtime import AppContext
from tests.conftest import fake_node

MACS = ["52:54:00:AA:00:02", "52:54:00:aa:00:01"]


def inventory(serial: str = "", macs: list[str] = MACS) -> dict[str, Any]:
    return {
        "cpu": {"threads": 1}, "memory": {"total_mib": 384},
        "nics": [{"name": f"ens{i}", "mac": mac.lower()} for i, mac in enumerate(macs)],
        "dmi": {"product_serial": serial},
    }


def discover(client: TestClient, macs: list[str] = MACS, *, serial: str = "",
             boot_mac: str | None = "52:54:00:aa:00:02") -> dict[str, Any]:
    response = client.post("/v1/agent/lookup", json={
        "macs": macs, "inventory": inventory(serial, macs), "discover": True,
        "boot_mac": boot_mac})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_unknown_mac_boots_the_discovery_ramdisk(client: TestClient) -> None:
    script = client.get("/v1/boot/ipxe", params={"mac": "52:54:00:AA:00:09"}).text
    assert script.startswith("#!ipxe")
    assert "metalfleet.mode=discover" in script
    assert "metalfleet.bootif=52:54:00:aa:00:09" in script
    assert "initrd http://testserver/boot/ramdisk/" in script
    enrolled = client.post("/v1/nodes", json=fake_node("n1", "52:54:00:aa:00:09"))
    assert enrolled.status_code == 201, enrolled.text
    known = client.get("/v1/boot/ipxe", params={"mac": "52:54:00:aa:00:09"}).text
    assert "discover" not in known and "sanboot" in known
    assert "n1" not in known and "enrolled" not in known  # anonymous: names nothing


def test_the_ipxe_mac_must_be_a_mac(client: TestClient) -> None:
    response = client.get("/v1/boot/ipxe", params={"mac": "x\nshell"})
    assert response.status_code == 422
    assert "not a MAC address" in response.json()["detail"]


def test_discovery_lookup_creates_an_enrolled_node_without_bmc(client: TestClient) -> None:
    answer = discover(client)
    assert answer["discovered"] is True and answer["token"] is None
    node = client.get(f"/v1/nodes/{answer['node']}").json()
    assert node["name"] == "node-525400aa0001"  # the lowest MAC: stable across NIC order
    assert node["state"] == "enrolled"
    assert node["hardware_type"] == "none" and node["bmc"]["driver"] == "none"
    assert node["labels"] == {DISCOVERED_LABEL: "true"}
    assert node["inventory"]["memory"]["total_mib"] == 384
    ports = {p["mac"]: p for p in node["ports"]}
    assert set(ports) == {"52:54:00:aa:00:01", "52:54:00:aa:00:02"}
    assert ports["52:54:00:aa:00:02"]["pxe"] and not ports["52:54:00:aa:00:01"]["pxe"]
    assert ports["52:54:00:aa:00:02"]["name"] == "ens0"
    events = client.get(f"/v1/nodes/{node['name']}/events").json()["items"]
    found = [e for e in events if e["kind"] == "discovered"]
    assert len(found) == 1 and found[0]["to_state"] == "enrolled"
    assert "52:54:00:aa:00:01" in found[0]["message"]


def test_discovery_is_idempotent(client: TestClient) -> None:
    first = discover(client)
    again = discover(client, ["52:54:00:aa:00:01"], boot_mac=None)  # one NIC is enough
    # Known MACs: no new node, and no name for a caller who proved nothing.
    assert again == {**first, "node": None, "discovered": False}
    nodes = client.get("/v1/nodes").json()["items"]
    assert [n["name"] for n in nodes] == [first["node"]]
    events = client.get(f"/v1/nodes/{first['node']}/events").json()["items"]
    assert [e["kind"] for e in events].count("discovered") == 1


def test_names_come_from_a_usable_dmi_serial(client: TestClient) -> None:
    assert discover(client, ["52:54:00:aa:01:01"], serial="SRV-4711")["node"] == "node-srv-4711"
    # A placeholder serial, or one that is not a name, falls back to the MAC.
    assert discover(client, ["52:54:00:aa:02:01"], serial="To be filled by O.E.M.")["node"] \
        == "node-525400aa0201"
    assert discover(client, ["52:54:00:aa:03:01"], serial="ds=nocloud-net;s=http://x/")[
        "node"] == "node-525400aa0301"
    # Two machines with the same serial: the second gets its MAC's tail.
    assert discover(client, ["52:54:00:aa:04:01"], serial="SRV-4711")["node"] \
        == "node-srv-4711-aa0401"


def test_lookup_without_discover_still_refuses_unknown_macs(client: TestClient) -> None:
    response = client.post("/v1/agent/lookup", json={"macs": ["52:54:00:aa:05:01"]})
    assert response.status_code == 401
    assert "boot_secret" in response.json()["detail"]
    assert client.get("/v1/nodes").json()["items"] == []


def test_discovery_refuses_bad_macs(client: TestClient) -> None:
    response = client.post("/v1/agent/lookup", json={"macs": ["nonsense"], "discover": True})
    assert response.status_code == 422


def test_verify_asks_for_a_bmc_until_one_is_set(client: TestClient,
                                                conductor: Conductor) -> None:
    from tests.conftest import drive

    name = discover(client)["node"]

    def state() -> str:
        return str(client.get(f"/v1/nodes/{name}").json()["state"])

    assert client.post(f"/v1/nodes/{name}/actions/manage").status_code == 202
    drive(conductor, lambda: state() == "verify-failed")
    error = client.get(f"/v1/nodes/{name}").json()["last_error"]
    assert "has no BMC" in error and "set the BMC address and credentials" in error
    patched = client.patch(f"/v1/nodes/{name}", json={
        "bmc": {"driver": "fake", "address": f"fake://{name}"}})
    assert patched.status_code == 200, patched.text
    assert patched.json()["hardware_type"] == "fake"
    assert client.post(f"/v1/nodes/{name}/actions/manage").status_code == 202
    drive(conductor, lambda: state() == "manageable")


@pytest.mark.slow
def test_agent_in_discover_mode_enrolls_and_returns(live_server: str, client: TestClient,
                                                    tmp_path: Path) -> None:
    root = HardwareRoot(build_root(tmp_path / "m", cpu_node_spec(7)))
    agent = Agent(live_server, root, discover=True, lookup_retry_s=0.1)
    agent.serve()  # returns: a discovered node has no work for its agent
    assert agent.node and not agent.token
    node = client.get(f"/v1/nodes/{agent.node}").json()
    nics = [nic["mac"] for nic in agent.inventory["nics"]]
    assert sorted(p["mac"] for p in node["ports"]) == sorted(nics)
    assert node["inventory"]["dmi"]["product_serial"] == \
        agent.inventory["dmi"]["product_serial"]
    Agent(live_server, root, discover=True).serve()  # boots discovery again: same node
    assert [n["name"] for n in client.get("/v1/nodes").json()["items"]] == [agent.node]


def test_a_lost_race_returns_the_winners_node(context: AppContext,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    macs = ["52:54:00:aa:06:01"]
    with context.db.session() as session:
        winner, created = discovery.discover(session, macs, inventory=inventory(macs=macs),
                                             boot_mac=None, address=None)
        assert created
    real = discovery.find_by_macs
    calls = []

    def too_late(session: Session, wanted: list[str]) -> m.Node | None:
        calls.append(wanted)  # the first check misses the node another agent just made
        return None if len(calls) == 1 else real(session, wanted)

    monkeypatch.setattr(discovery, "find_by_macs", too_late)
    with context.db.session() as session:
        node, created = discovery.discover(session, macs, inventory=inventory(macs=macs),
                                           boot_mac=None, address=None)
        assert (node.name, created) == (winner.name, False)
        events.record(session, node=node, kind="info", actor="test", message="still usable")
    with context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(m.Node)) == 1
        assert session.scalar(select(func.count()).select_from(m.Event)
                              .where(m.Event.message == "still usable")) == 1
