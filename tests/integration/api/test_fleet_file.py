"""The declarative fleet file (POST /v1/fleet/plan and /apply) on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node

EXAMPLE = Path(__file__).resolve().parents[3] / "docs" / "examples" / "fleet.yaml"


def _fleet() -> dict[str, Any]:
    return {
        "version": 1,
        "sites": [{"name": "lab", "location": "room 2"}],
        "racks": [{"name": "r1", "site": "lab", "u_height": 42}],
        "networks": [{"name": "prov", "site": "lab", "role": "provisioning",
                      "cidr": "10.0.0.0/24", "gateway": "10.0.0.1"}],
        "node_classes": [{"name": "gpu", "gpu_count": 8}],
        "tenants": [{"name": "acme"}],
        "images": [{"name": "ubuntu", "location": "http://images.example/u.raw"}],
        "nodes": [
            fake_node("n1", "52:54:00:00:00:01", rack="r1", u_position=1, u_size=2,
                      node_class="gpu", tenant="acme"),
            fake_node("n2", "52:54:00:00:00:02", rack="r1", u_position=3),
        ],
    }


def _without_passwords(fleet: dict[str, Any]) -> dict[str, Any]:
    """The file as kept in git once the nodes are enrolled: no BMC password (kept as stored)."""
    for node in fleet["nodes"]:
        node["bmc"].pop("password", None)
    return fleet


def _post(client: TestClient, verb: str, fleet: dict[str, Any], prune: bool = False) -> Any:
    return client.post(f"/v1/fleet/{verb}", json={"fleet": fleet, "prune": prune})


def _actions(body: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {(c["kind"], c["name"]): c["action"] for c in body["changes"]}


def _event_count(client: TestClient) -> int:
    return len(client.get("/v1/events", params={"limit": 1000}).json()["items"])


def _snapshot(client: TestClient) -> dict[str, Any]:
    paths = ["sites", "racks", "networks", "node-classes", "tenants", "images", "nodes"]
    return {p: client.get(f"/v1/{p}").json()["items"] for p in paths}


def _state(client: TestClient, name: str) -> str:
    return str(client.get(f"/v1/nodes/{name}").json()["state"])


def test_plan_on_an_empty_fleet_lists_creates_and_changes_nothing(client: TestClient) -> None:
    r = _post(client, "plan", _fleet())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["applied"] is False
    assert set(_actions(body).values()) == {"create"}
    assert ("node", "n1") in _actions(body) and ("rack", "r1") in _actions(body)
    assert body["summary"] == {"create": 8, "update": 0, "unchanged": 0, "delete": 0,
                               "unmanaged": 0}
    assert all(not items for items in _snapshot(client).values())
    assert _event_count(client) == 0


def test_apply_creates_and_a_second_apply_writes_nothing(client: TestClient) -> None:
    r = _post(client, "apply", _fleet())
    assert r.status_code == 200, r.text
    assert r.json()["applied"] is True and r.json()["summary"]["create"] == 8
    assert "s3cret-pw" not in r.text
    n1 = client.get("/v1/nodes/n1").json()
    assert n1["state"] == "enrolled" and n1["rack"] == "r1" and n1["node_class"] == "gpu"
    assert n1["tenant"] == "acme" and n1["ports"][0]["mac"] == "52:54:00:00:00:01"
    assert client.get("/v1/racks/r1").json()["site"] == "lab"
    events = _event_count(client)
    assert events >= 2  # two enrolments (and the apply itself)
    before = _snapshot(client)

    again = _post(client, "apply", _without_passwords(_fleet()))
    assert again.status_code == 200, again.text
    assert again.json()["summary"] == {"create": 0, "update": 0, "unchanged": 8, "delete": 0,
                                       "unmanaged": 0}
    assert set(_actions(again.json()).values()) == {"unchanged"}
    assert _event_count(client) == events
    assert _snapshot(client) == before  # updated_at included


def test_a_changed_field_is_an_update_with_old_and_new(
    client: TestClient, context: AppContext
) -> None:
    assert _post(client, "apply", _fleet()).status_code == 200
    events = _event_count(client)
    fleet = _fleet()
    fleet["racks"][0]["u_height"] = 48
    fleet["nodes"][0]["labels"] = {"pool": "training"}
    fleet["nodes"][1]["bmc"]["password"] = "n3w-pw"
    plan = _post(client, "plan", fleet)
    assert plan.status_code == 200, plan.text
    assert "s3cret-pw" not in plan.text and "n3w-pw" not in plan.text
    changes = {(c["kind"], c["name"]): c for c in plan.json()["changes"]}
    assert changes[("rack", "r1")]["action"] == "update"
    assert changes[("rack", "r1")]["fields"] == {"u_height": {"old": 42, "new": 48, "note": None}}
    assert changes[("node", "n1")]["fields"]["labels"] == {
        "old": {}, "new": {"pool": "training"}, "note": None}
    assert changes[("node", "n2")]["fields"] == {
        "bmc.password": {"old": None, "new": None, "note": "will be set (not compared)"}}
    assert changes[("site", "lab")]["action"] == "unchanged"
    assert plan.json()["summary"]["update"] == 3
    assert client.get("/v1/racks/r1").json()["u_height"] == 42  # plan changed nothing
    assert _event_count(client) == events

    assert _post(client, "apply", fleet).status_code == 200
    assert client.get("/v1/racks/r1").json()["u_height"] == 48
    assert client.get("/v1/nodes/n1").json()["labels"] == {"pool": "training"}
    with context.db.session() as session:
        stored = session.scalar(select(m.Node.bmc_password_encrypted).where(m.Node.name == "n2"))
    assert stored is not None and context.cipher.decrypt(stored) == "n3w-pw"
    messages = [e["message"] for e in client.get("/v1/nodes/n2/events").json()["items"]]
    assert messages[-1] == "updated: bmc"
    assert set(_actions(_post(client, "plan", _without_passwords(fleet)).json()).values()
               ) == {"unchanged"}


def test_every_error_is_reported_with_its_path_and_nothing_is_applied(
    client: TestClient,
) -> None:
    assert _post(client, "apply", _fleet()).status_code == 200
    before, events = _snapshot(client), _event_count(client)
    bad = _fleet()
    bad["version"] = 2
    bad["colour"] = "red"
    bad["sites"].append({"name": "Lab!"})
    bad["racks"].append({"name": "r2", "site": "nowhere"})
    bad["racks"][0]["site"] = "lab2"
    bad["networks"][0].update(gateway="10.9.0.1", dhcp_start="10.0.0.10", dhcp_end="10.9.0.20")
    bad["node_classes"][0]["gpu_count"] = "many"
    bad["switches"] = [{"name": "s1", "role": "leaf", "fabric": "infiniband"},
                       {"name": "s2", "role": "spine", "fabric": "infiniband"}]
    bad["switch_links"] = [
        {"name": "l1", "switch": "s1", "port": "1", "peer_switch": "s2", "peer_port": "1"},
        {"name": "l2", "switch": "s1", "port": "1", "peer_switch": "s2", "peer_port": "2"},
    ]
    del bad["images"][0]["location"]
    bad["nodes"][0]["labels"] = {"pool": "changed"}  # a valid change, never applied
    bad["nodes"][1]["bmc"]["address"] = ""
    bad["nodes"] += [
        fake_node("n1", "52:54:00:00:00:09"),
        fake_node("n3", "52:54:00:00:00:01"),
        fake_node("n4", "52:54:00:00:00:04", rack="r1", u_position=2),
        fake_node("n5", "52:54:00:00:00:05", rack="no-rack"),
        fake_node("n6", "52:54:00:00:00:02"),
    ]
    r = _post(client, "apply", bad)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = r.json()["errors"]
    paths = {e["path"] for e in errors}
    assert paths == {
        "version", "colour", "sites[1].name", "racks[0].site", "racks[1].site",
        "switch_links[1].port", "networks[0].gateway", "networks[0].dhcp_end",
        "node_classes[0].gpu_count", "images[0].location", "nodes[1].bmc.address",
        "nodes[2].name", "nodes[3].ports[0].mac", "nodes[4].u_position", "nodes[5].rack",
        "nodes[6].ports[0].mac",  # the MAC of nodes[1], which has a schema error itself
    }, errors
    sections = ["sites", "racks", "switches", "switch_links", "networks", "node_classes",
                "tenants", "images", "nodes"]
    ranks = [sections.index(e["path"].split("[")[0]) if "[" in e["path"] else -1
             for e in errors]
    assert ranks == sorted(ranks)  # in the order of the file
    message = {e["path"]: e["message"] for e in errors}
    assert message["racks[1].site"] == "site 'nowhere' is neither in the file nor in the fleet"
    assert any("cannot change in place" in e["message"] for e in errors
               if e["path"] == "racks[0].site")
    assert "switch_links[0]" in message["switch_links[1].port"]
    assert "nodes[0].ports[0].mac" in message["nodes[3].ports[0].mac"]
    assert "'n1'" in message["nodes[4].u_position"]
    assert "outside the network" in message["networks[0].dhcp_end"]
    assert "s3cret-pw" not in r.text
    assert _snapshot(client) == before and _event_count(client) == events
    assert _post(client, "plan", bad).status_code == 422


def test_a_mac_taken_by_a_fleet_node_outside_the_file_is_an_error(client: TestClient) -> None:
    assert client.post("/v1/nodes", json=fake_node("old", "52:54:00:00:00:aa")).status_code == 201
    r = _post(client, "apply", {"nodes": [fake_node("new", "52:54:00:00:00:AA")]})
    assert r.status_code == 422, r.text
    assert [e["path"] for e in r.json()["errors"]] == ["nodes[0].ports[0].mac"]
    assert "'old'" in r.json()["errors"][0]["message"]
    assert [n["name"] for n in client.get("/v1/nodes").json()["items"]] == ["old"]
    ok = _post(client, "plan", {"nodes": [fake_node("new", "52:54:00:00:00:bb")]})
    assert _actions(ok.json()) == {("node", "new"): "create", ("node", "old"): "unmanaged"}


def test_nodes_in_the_file_can_swap_macs_and_rack_units(client: TestClient) -> None:
    assert _post(client, "apply", _fleet()).status_code == 200
    fleet = _fleet()
    a, b = fleet["nodes"]
    a["ports"][0]["mac"], b["ports"][0]["mac"] = b["ports"][0]["mac"], a["ports"][0]["mac"]
    a["u_position"], b["u_position"] = 2, 1
    a["u_size"] = 1
    r = _post(client, "apply", fleet)
    assert r.status_code == 200, r.text
    n1, n2 = (client.get(f"/v1/nodes/{n}").json() for n in ("n1", "n2"))
    assert n1["ports"][0]["mac"] == "52:54:00:00:00:02" and n1["u_position"] == 2
    assert n2["ports"][0]["mac"] == "52:54:00:00:00:01" and n2["u_position"] == 1
    plan = _post(client, "plan", _without_passwords(fleet)).json()
    assert set(_actions(plan).values()) == {"unchanged"}


def test_prune_deletes_an_enrolled_node_but_refuses_an_active_one(
    client: TestClient, conductor: Conductor
) -> None:
    fleet: dict[str, Any] = {
        "images": [{"name": "ubuntu", "location": "http://images.example/u.raw"}],
        "nodes": [fake_node("busy", "52:54:00:00:00:01"), fake_node("spare", "52:54:00:00:00:02")],
    }
    assert _post(client, "apply", fleet).status_code == 200
    for action, settled in (("manage", "manageable"), ("inspect", "inspected"),
                            ("provide", "available")):
        assert client.post(f"/v1/nodes/busy/actions/{action}").status_code == 202
        drive(conductor, lambda s=settled: _state(client, "busy") == s)
    r = client.post("/v1/nodes/busy/actions/deploy", json={"image": "ubuntu"})
    assert r.status_code == 202, r.text
    drive(conductor, lambda: _state(client, "busy") == "active")
    # What the conductor recorded on the node is not a difference from the file.
    plan = _post(client, "plan", _without_passwords(fleet)).json()
    assert set(_actions(plan).values()) == {"unchanged"}
    assert client.post("/v1/tenants", json={"name": "unlisted"}).status_code == 201
    assert client.post("/v1/images", json={"name": "stale",
                                           "location": "http://x.example/s.raw"}).status_code == 201

    refused = _post(client, "apply", {**fleet, "nodes": []}, prune=True)
    assert refused.status_code == 422, refused.text
    errors = refused.json()["errors"]
    assert [e["path"] for e in errors] == ["nodes"]
    assert "'busy'" in errors[0]["message"] and "active" in errors[0]["message"]
    assert {n["name"] for n in client.get("/v1/nodes").json()["items"]} == {"busy", "spare"}

    keep_busy = {**fleet, "nodes": [fleet["nodes"][0]]}
    in_use = _post(client, "plan", {**keep_busy, "images": []}, prune=True)
    assert in_use.status_code == 422, in_use.text
    assert in_use.json()["errors"] == [{"path": "images", "message": "image 'ubuntu' is used by "
                                        "node 'busy'; prune cannot delete it"}]
    plan = _post(client, "plan", keep_busy, prune=True).json()
    assert _actions(plan) == {("image", "ubuntu"): "unchanged", ("image", "stale"): "delete",
                              ("tenant", "unlisted"): "unmanaged",
                              ("node", "busy"): "unchanged", ("node", "spare"): "delete"}
    assert _actions(_post(client, "plan", keep_busy).json())[("node", "spare")] == "unmanaged"
    r = _post(client, "apply", keep_busy, prune=True)
    assert r.status_code == 200, r.text
    assert r.json()["summary"]["delete"] == 2
    assert client.get("/v1/nodes/spare").status_code == 404
    assert client.get("/v1/images/stale").status_code == 404
    assert _state(client, "busy") == "active"
    assert client.get("/v1/tenants/unlisted").status_code == 200


def test_prune_refuses_to_delete_what_the_file_still_uses(client: TestClient) -> None:
    assert _post(client, "apply", _fleet()).status_code == 200
    fleet = _fleet()
    fleet["sites"] = []
    r = _post(client, "plan", fleet, prune=True)
    assert r.status_code == 422
    paths = {e["path"] for e in r.json()["errors"]}
    assert paths == {"racks[0].site", "networks[0].site"}
    assert "prune would delete it" in r.json()["errors"][0]["message"]


def test_the_example_file_applies_cleanly(client: TestClient) -> None:
    fleet = yaml.safe_load(EXAMPLE.read_text())
    r = _post(client, "apply", fleet)
    assert r.status_code == 200, r.text
    summary = r.json()["summary"]
    assert summary["create"] == 19 and summary["update"] == summary["delete"] == 0
    nodes = client.get("/v1/nodes").json()["items"]
    assert len(nodes) == 4 and {n["state"] for n in nodes} == {"enrolled"}
    assert {n["hardware_type"] for n in nodes} == {"redfish"}
    links = client.get("/v1/switch-links").json()["items"]
    assert {link["peer_switch"] for link in links} == {"ib-spine"}
    again = _post(client, "plan", copy.deepcopy(fleet)).json()
    # The file's BMC passwords are never compared with the stored ones (no oracle).
    assert again["summary"]["unchanged"] == 15 and again["summary"]["update"] == 4
    assert {str(c["fields"]) for c in again["changes"] if c["action"] == "update"} == {
        "{'bmc.password': {'old': None, 'new': None, 'note': 'will be set (not compared)'}}"}
    again = _post(client, "plan", _without_passwords(copy.deepcopy(fleet))).json()
    assert again["summary"]["unchanged"] == 19


def test_roles_and_malformed_bodies(client: TestClient) -> None:
    viewer = client.post("/v1/tokens", json={"name": "watcher", "role": "viewer"}).json()["token"]
    r = client.post("/v1/fleet/plan", json={"fleet": {}},
                    headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403
    assert client.post("/v1/fleet/plan", json={"fleet": []}).status_code == 422
    r = _post(client, "plan", {"nodes": {"name": "n1"}})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "nodes"
    assert _post(client, "plan", {}).json()["summary"]["create"] == 0
