"""The lifecycle drives switch ports: provisioning while metalfleet works on a node, the
tenant's network while the tenant holds it, quarantine when it fails; drift is put back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.network.fake import FakeSwitch
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node

SWITCH = "leaf1"


@pytest.fixture(autouse=True)
def clean_switch() -> Iterator[None]:
    FakeSwitch.reset()
    yield
    FakeSwitch.reset()


def _state(client: TestClient, name: str) -> str:
    return str(client.get(f"/v1/nodes/{name}").json()["state"])


def _fabric(client: TestClient, **access: Any) -> None:
    assert client.post("/v1/switches", json={"name": SWITCH, "role": "leaf",
                                             "fabric": "ethernet"}).status_code == 201
    r = client.put(f"/v1/switches/{SWITCH}/access", json={"driver": "fake", **access})
    assert r.status_code == 200, r.text
    assert client.post("/v1/networks", json={"name": "prov", "role": "provisioning",
                                             "vlan_id": 10, "cidr": "10.10.0.0/24"}
                       ).status_code == 201
    assert client.post("/v1/tenants", json={"name": "acme"}).status_code == 201
    assert client.post("/v1/images", json={
        "name": "img", "location": "http://images.example/img.raw",
        "sha256": "0" * 64, "size_bytes": 1024}).status_code == 201


def _node(client: TestClient, conductor: Conductor, name: str, mac: str, port: str) -> None:
    body = fake_node(name, mac, tenant="acme")
    body["ports"][0].update(switch=SWITCH, switch_port=port)
    assert client.post("/v1/nodes", json=body).status_code == 201, body
    for action, settled in (("manage", "manageable"), ("inspect", "inspected"),
                            ("provide", "available")):
        assert client.post(f"/v1/nodes/{name}/actions/{action}").status_code == 202
        drive(conductor, lambda s=settled: _state(client, name) == s)


def _events(client: TestClient, name: str) -> list[dict[str, Any]]:
    return list(client.get(f"/v1/nodes/{name}/events", params={"limit": 500}).json()["items"])


def test_deploy_puts_ports_on_the_tenant_network_and_undeploy_takes_them_back(
        client: TestClient, conductor: Conductor) -> None:
    _fabric(client)
    _node(client, conductor, "n1", "52:54:00:00:01:01", "swp1")
    assert FakeSwitch(SWITCH).port_state("swp1").vlan == 10, "ramdisk boots on provisioning"

    assert client.post("/v1/nodes/n1/actions/deploy", json={"image": "img"}).status_code == 202
    drive(conductor, lambda: _state(client, "n1") == "active")
    tenant_net = client.get("/v1/networks/tenant-acme").json()
    assert tenant_net["role"] == "tenant" and tenant_net["tenant"] == "acme"
    assert FakeSwitch(SWITCH).port_state("swp1").vlan == tenant_net["vlan_id"] == 1000
    history = _events(client, "n1")
    moved = [i for i, e in enumerate(history) if e["kind"] == "network"
             and "tenant-acme" in e["message"]]
    active = [i for i, e in enumerate(history) if e["to_state"] == "active"]
    assert moved and active and moved[-1] < active[-1], "on its network before it is active"

    assert client.post("/v1/nodes/n1/actions/undeploy").status_code == 202
    drive(conductor, lambda: _state(client, "n1") == "available")
    assert FakeSwitch(SWITCH).port_state("swp1").vlan == 10
    history = _events(client, "n1")
    back = [i for i, e in enumerate(history) if e["kind"] == "network" and "prov" in
            e["message"]]
    cleaning = [i for i, e in enumerate(history) if e["to_state"] == "cleaning"]
    assert back and cleaning and min(i for i in back if i > moved[-1]) < cleaning[-1], \
        "back on provisioning before cleaning starts"


@pytest.mark.parametrize("misbehaviour, reason", [
    ({"fail": "set"}, "told to refuse"),
    ({"lie": True}, "the switch reports VLAN 10"),
])
def test_a_switch_that_does_not_move_the_port_fails_the_deploy(
        client: TestClient, conductor: Conductor, misbehaviour: dict[str, Any],
        reason: str) -> None:
    _fabric(client)
    _node(client, conductor, "n1", "52:54:00:00:01:01", "swp1")
    r = client.put(f"/v1/switches/{SWITCH}/access",
                   json={"driver": "fake", "driver_info": misbehaviour})
    assert r.status_code == 200
    assert client.post("/v1/nodes/n1/actions/deploy", json={"image": "img"}).status_code == 202
    drive(conductor, lambda: _state(client, "n1") == "deploy-failed")
    node = client.get("/v1/nodes/n1").json()
    assert "could not move the node's ports to" in node["last_error"]
    assert reason in node["last_error"]
    assert FakeSwitch(SWITCH).port_state("swp1").vlan == 10, "never left on the tenant's"


def test_the_sweep_puts_back_drift_and_quarantines_a_failed_node(
        client: TestClient, conductor: Conductor, context: AppContext) -> None:
    _fabric(client)
    _node(client, conductor, "n1", "52:54:00:00:01:01", "swp1")
    assert client.post("/v1/nodes/n1/actions/deploy", json={"image": "img"}).status_code == 202
    drive(conductor, lambda: _state(client, "n1") == "active")
    assert conductor.port_sweep.run_once() == {"checked": 1, "drifted": 0, "fixed": 0,
                                               "errors": 0}

    FakeSwitch.set_actual(SWITCH, "swp1", 10)  # someone at the console: back on provisioning
    assert conductor.port_sweep.run_once() == {"checked": 1, "drifted": 1, "fixed": 1,
                                               "errors": 0}
    assert FakeSwitch(SWITCH).port_state("swp1").vlan == 1000
    drift = [e for e in _events(client, "n1") if e["kind"] == "drift"]
    assert len(drift) == 1 and "swp1) on VLAN 10" in drift[0]["message"]

    with context.db.session() as session:
        node = session.scalars(select(m.Node).where(m.Node.name == "n1")).one()
        node.health = "failed"
    conductor.port_sweep.run_once()
    assert FakeSwitch(SWITCH).port_state("swp1").vlan == 4094, "quarantine reaches nothing"
    assert client.get("/v1/networks/quarantine").json()["role"] == "quarantine"


def test_switch_access_keeps_its_secrets_and_its_host(client: TestClient,
                                                      context: AppContext) -> None:
    assert client.post("/v1/switches", json={"name": SWITCH, "role": "leaf",
                                             "fabric": "ethernet"}).status_code == 201
    r = client.put(f"/v1/switches/{SWITCH}/access", json={
        "driver": "linux-bridge", "address": "10.0.0.5", "username": "netops",
        "password": "sw1tch-s3cret"})
    assert r.status_code == 200 and "sw1tch-s3cret" not in r.text
    assert r.json()["has_password"] is True
    with context.db.session() as session:
        stored = session.scalars(select(m.Switch)).one().password_encrypted
        assert stored and "sw1tch-s3cret" not in stored
        assert context.cipher.decrypt(stored) == "sw1tch-s3cret"
    kept = client.put(f"/v1/switches/{SWITCH}/access", json={
        "driver": "linux-bridge", "address": "10.0.0.6", "username": "netops"})
    assert kept.json()["has_password"] is True, "no password given: the stored one stays"
    for body, needle in (
            ({"driver": "linux-bridge"}, "--lab"),  # on the conductor's own host
            ({"driver": "linux-bridge", "address": "10.0.0.5", "username": "x",
              "driver_info": {"key_file": "/etc/shadow"}}, "--lab"),
            ({"driver": "telnet"}, "not one of"),
            ({"driver": "fake", "driver_info": {"command": "reboot"}}, "not known")):
        r = client.put(f"/v1/switches/{SWITCH}/access", json=body)
        assert r.status_code == 422 and needle in r.json()["detail"], r.text
