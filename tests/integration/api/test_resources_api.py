"""CRUD of the fleet's named resources and IPAM, on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient


def _problem(response: httpx.Response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert needle in response.text


def test_site_rack_switch_crud_with_references(client: TestClient) -> None:
    assert client.post("/v1/sites", json={"name": "dc1", "location": "Berlin"}).status_code == 201
    r = client.post("/v1/racks", json={"name": "r1", "site": "dc1", "u_height": 48})
    assert r.status_code == 201 and r.json()["site"] == "dc1"
    assert r.headers["location"] == "/v1/racks/r1"
    r = client.post("/v1/switches", json={"name": "leaf1", "rack": "r1", "role": "leaf",
                                          "fabric": "infiniband"})
    assert r.status_code == 201
    client.post("/v1/switches", json={"name": "spine1", "role": "spine", "fabric": "infiniband"})
    r = client.post("/v1/switch-links", json={"name": "leaf1-up", "switch": "leaf1",
                                              "port": "p1", "peer_switch": "spine1",
                                              "peer_port": "p9"})
    assert r.status_code == 201 and r.json()["peer_switch"] == "spine1"
    r = client.patch("/v1/racks/r1", json={"power_budget_w": 30000})
    assert r.json()["power_budget_w"] == 30000 and r.json()["u_height"] == 48
    listed = client.get("/v1/switches", params={"filter": "fabric=infiniband"}).json()
    assert [s["name"] for s in listed["items"]] == ["leaf1", "spine1"]
    _problem(client.get("/v1/switches", params={"filter": "colour=red"}), 422, "colour")
    _problem(client.delete("/v1/sites/dc1"), 409, "still in use")
    assert client.get("/v1/sites/dc1").status_code == 200
    assert client.delete("/v1/switch-links/leaf1-up").status_code == 204
    assert client.delete("/v1/switches/leaf1").status_code == 204
    assert client.delete("/v1/racks/r1").status_code == 204
    assert client.delete("/v1/sites/dc1").status_code == 204
    _problem(client.get("/v1/sites/dc1"), 404, "no site named 'dc1'")


def test_resource_bad_input(client: TestClient) -> None:
    client.post("/v1/sites", json={"name": "dc1"})
    _problem(client.post("/v1/sites", json={"name": "dc1"}), 409, "already exists")
    _problem(client.post("/v1/sites", json={"name": "Bad Name!"}), 422, "name")
    _problem(client.post("/v1/sites", json={"name": "dc2", "floor": 3}), 422, "floor")
    _problem(client.post("/v1/racks", json={"name": "r1", "site": "nowhere"}), 422, "nowhere")
    _problem(client.post("/v1/racks", json={"name": "r1", "site": "dc1", "u_height": "tall"}),
             422, "u_height")
    _problem(client.post("/v1/switches", json={"name": "s", "role": "core",
                                               "fabric": "ethernet"}), 422, "role")
    _problem(client.post("/v1/images", json={"name": "i", "location": "/tmp/x.raw"}), 422,
             "location")
    _problem(client.post("/v1/images", json={"name": "i", "location": "http://x/i",
                                             "sha256": "abc"}), 422, "sha256")
    assert [s["name"] for s in client.get("/v1/sites").json()["items"]] == ["dc1"]
    assert client.get("/v1/racks").json()["items"] == []


def test_network_addresses_must_be_inside(client: TestClient) -> None:
    base = {"name": "prov", "role": "provisioning", "cidr": "10.0.0.0/24"}
    _problem(client.post("/v1/networks", json={**base, "gateway": "10.0.1.1"}), 422,
             "outside the network")
    _problem(client.post("/v1/networks", json={**base, "cidr": "10.0.0.1/24"}), 422, "CIDR")
    _problem(client.post("/v1/networks", json={**base, "dhcp_start": "10.0.0.50"}), 422,
             "both dhcp_start and dhcp_end")
    _problem(client.post("/v1/networks", json={**base, "vlan_id": 5000}), 422, "vlan_id")
    ok = client.post("/v1/networks", json={**base, "gateway": "10.0.0.1", "vlan_id": 20,
                                           "dhcp_start": "10.0.0.100", "dhcp_end": "10.0.0.200"})
    assert ok.status_code == 201 and ok.json()["mtu"] == 1500
    _problem(client.patch("/v1/networks/prov", json={"gateway": "192.168.0.1"}), 422,
             "outside the network")
    assert client.get("/v1/networks/prov").json()["gateway"] == "10.0.0.1"


def test_ipam_allocates_each_address_once_and_reports_exhaustion(client: TestClient) -> None:
    client.post("/v1/networks", json={"name": "tiny", "role": "management",
                                      "cidr": "10.9.0.0/29", "gateway": "10.9.0.1",
                                      "dhcp_start": "10.9.0.5", "dhcp_end": "10.9.0.6"})
    # /29 hosts: .1-.6; .1 is the gateway, .5-.6 the DHCP pool: .2, .3, .4 are static.
    got = [client.post("/v1/networks/tiny/allocations", json={}).json()["address"]
           for _ in range(3)]
    assert got == ["10.9.0.2", "10.9.0.3", "10.9.0.4"]
    _problem(client.post("/v1/networks/tiny/allocations", json={}), 409, "no free static")
    _problem(client.post("/v1/networks/tiny/allocations", json={"address": "10.9.0.3"}), 409,
             "already allocated")
    _problem(client.post("/v1/networks/tiny/allocations", json={"address": "10.9.1.3"}), 422,
             "outside network tiny")
    _problem(client.post("/v1/networks/tiny/allocations", json={"address": "10.9.0.5"}), 409,
             "DHCP range")
    assert client.delete("/v1/networks/tiny/allocations/10.9.0.3").status_code == 204
    again = client.post("/v1/networks/tiny/allocations", json={"purpose": "bmc"}).json()
    assert again["address"] == "10.9.0.3" and again["purpose"] == "bmc"
    listed = client.get("/v1/networks/tiny/allocations").json()["items"]
    assert sorted(a["address"] for a in listed) == ["10.9.0.2", "10.9.0.3", "10.9.0.4"]
    _problem(client.delete("/v1/networks/tiny/allocations/10.9.0.3x"), 404, "not allocated")


def test_openapi_and_tokens(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/nodes/{name}/actions/{action}" in spec["paths"]
    assert "/v1/fleet/apply" in spec["paths"]
    made = client.post("/v1/tokens", json={"name": "ops", "role": "operator"})
    assert made.status_code == 201 and made.json()["token"].startswith("mf_")
    listed = client.get("/v1/tokens").json()["items"]
    assert {t["name"] for t in listed} == {"admin", "ops"}
    assert all("token" not in t for t in listed), "secrets are shown once only"
    ops = {"Authorization": f"Bearer {made.json()['token']}"}
    assert client.post("/v1/sites", json={"name": "s1"}, headers=ops).status_code == 201
    _problem(client.get("/v1/tokens", headers=ops), 403, "admin")
    _problem(client.post("/v1/tokens", json={"name": "m", "role": "member"}), 422, "tenant")
    assert client.delete("/v1/tokens/ops").status_code == 204
    _problem(client.get("/v1/sites", headers=ops), 401, "not known")
