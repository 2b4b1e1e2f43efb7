"""Switches as an attacker sees them: a member cannot read or change how metalfleet reaches
a switch, an operator cannot make a production conductor rewire its own host or read its
files through a key path, and a hostile port name never reaches a switch command line."""

from __future__ import annotations

from fastapi.testclient import TestClient

from metalfleet.runtime import AppContext
from tests.conftest import fake_node


def _member(client: TestClient) -> dict[str, str]:
    client.post("/v1/tenants", json={"name": "acme"})
    token = client.post("/v1/tokens", json={"name": "acme-user", "role": "member",
                                            "tenant": "acme"}).json()["token"]
    return {"Authorization": f"Bearer {token}"}


def test_members_neither_read_nor_set_switch_access(client: TestClient) -> None:
    client.post("/v1/switches", json={"name": "leaf1", "role": "leaf", "fabric": "ethernet"})
    client.put("/v1/switches/leaf1/access", json={"driver": "linux-bridge",
                                                  "address": "10.0.0.5", "username": "netops",
                                                  "password": "sw1tch-s3cret"})
    member = _member(client)
    assert client.get("/v1/switches/leaf1/access", headers=member).status_code == 403
    r = client.put("/v1/switches/leaf1/access", headers=member, json={"driver": "none"})
    assert r.status_code == 403
    assert client.get("/v1/switches/leaf1/access").json()["driver"] == "linux-bridge"
    assert "sw1tch-s3cret" not in client.get("/v1/switches/leaf1/access").text


def test_a_production_server_refuses_switches_on_its_own_host(client: TestClient,
                                                               context: AppContext) -> None:
    assert context.lab is None
    client.post("/v1/switches", json={"name": "leaf1", "role": "leaf", "fabric": "ethernet"})
    for info in ({}, {"netns": "mf-sw"}):
        r = client.put("/v1/switches/leaf1/access",
                       json={"driver": "linux-bridge", "driver_info": info})
        assert r.status_code == 422 and "--lab" in r.json()["detail"]
        assert r.headers["content-type"].startswith("application/problem+json")
    r = client.put("/v1/switches/leaf1/access", json={
        "driver": "linux-bridge", "address": "10.0.0.5", "username": "x",
        "driver_info": {"key_file": "/root/.ssh/id_ed25519"}})
    assert r.status_code == 422 and "--lab" in r.json()["detail"]
    assert client.get("/v1/switches/leaf1/access").json()["driver"] == "none"


def test_a_hostile_switch_port_name_is_refused_at_the_api(client: TestClient) -> None:
    client.post("/v1/switches", json={"name": "leaf1", "role": "leaf", "fabric": "ethernet"})
    for hostile in ("swp1; reboot", "$(reboot)", "swp1 master br0", "-f", "a" * 40):
        body = fake_node("n1", "52:54:00:00:03:01")
        body["ports"][0].update(switch="leaf1", switch_port=hostile)
        r = client.post("/v1/nodes", json=body)
        assert r.status_code == 422, hostile
    assert client.get("/v1/nodes").json()["items"] == []
