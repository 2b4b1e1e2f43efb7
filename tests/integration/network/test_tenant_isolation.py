"""Two tenants' nodes deployed through the conductor onto a real Linux-bridge switch: their
ports land on their own networks, and pings say who reaches whom."""

from __future__ import annotations

from fastapi.testclient import TestClient

from metalfleet.conductor.worker import Conductor
from metalfleet.network.linux_bridge import BridgePerNetwork
from metalfleet.network.switch import Segment
from metalfleet.network.transport import LocalTransport
from metalfleet.runtime import LabAllowance
from tests.conftest import drive, fake_node
from tests.integration.network.fabric import Fabric


def _state(client: TestClient, name: str) -> str:
    return str(client.get(f"/v1/nodes/{name}").json()["state"])


def _walk(client: TestClient, conductor: Conductor, name: str, *steps: tuple[str, str]) -> None:
    for action, settled in steps:
        body = {"image": "img"} if action == "deploy" else None
        assert client.post(f"/v1/nodes/{name}/actions/{action}", json=body).status_code == 202
        drive(conductor, lambda s=settled: _state(client, name) == s)


def test_two_tenants_on_one_switch_reach_only_their_own(
        client: TestClient, conductor: Conductor, lab_enabled: LabAllowance,
        fabric: Fabric) -> None:
    assert client.post("/v1/switches", json={"name": "lab-leaf", "role": "leaf",
                                             "fabric": "ethernet"}).status_code == 201
    r = client.put("/v1/switches/lab-leaf/access", json={
        "driver": "linux-bridge", "driver_info": {"netns": fabric.switch}})
    assert r.status_code == 200, r.text  # a local switch: an admin in a --lab process
    client.post("/v1/networks", json={"name": "prov", "role": "provisioning", "vlan_id": 10,
                                      "cidr": "10.10.0.0/24"})
    client.post("/v1/images", json={"name": "img", "location": "http://images.example/i.raw",
                                    "sha256": "0" * 64, "size_bytes": 1024})
    for tenant, node, port, mac in (("acme", "a1", "pa", "52:54:00:00:02:01"),
                                    ("globex", "b1", "pb", "52:54:00:00:02:02")):
        client.post("/v1/tenants", json={"name": tenant})
        body = fake_node(node, mac, tenant=tenant)
        body["ports"][0].update(switch="lab-leaf", switch_port=port)
        assert client.post("/v1/nodes", json=body).status_code == 201
        _walk(client, conductor, node, ("manage", "manageable"), ("inspect", "inspected"),
              ("provide", "available"))
    assert fabric.reaches("a", "b"), "both on provisioning while metalfleet works on them"

    _walk(client, conductor, "a1", ("deploy", "active"))
    _walk(client, conductor, "b1", ("deploy", "active"))
    acme = client.get("/v1/networks/tenant-acme").json()
    # acme's router sits on acme's network (the operator's side of the tenant network)
    BridgePerNetwork(LocalTransport(netns=fabric.switch)).move_port(
        "pg", Segment(acme["name"], acme["vlan_id"]))
    assert fabric.reaches("a", "g"), "acme's node reaches acme's gateway"
    assert not fabric.reaches("a", "b") and not fabric.reaches("b", "a"), \
        "two tenants do not reach each other"
    assert not fabric.reaches("b", "g"), "nor globex acme's gateway"

    _walk(client, conductor, "a1", ("undeploy", "available"))
    assert not fabric.reaches("a", "g"), "released: off acme's network"
    _walk(client, conductor, "b1", ("undeploy", "available"))
    assert fabric.reaches("a", "b"), "both back on provisioning for cleaning"
