"""The node API on SQLite and PostgreSQL: enrolment, lifecycle, errors, auth, pagination."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from metalfleet.conductor.worker import Conductor
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node


def _state(client: TestClient, name: str) -> str:
    return str(client.get(f"/v1/nodes/{name}").json()["state"])


def _image(client: TestClient) -> None:
    r = client.post("/v1/images", json={"name": "ubuntu-22.04", "os": "Ubuntu 22.04",
                                        "location": "http://images.example/u.raw"})
    assert r.status_code == 201, r.text


def _walk_to_available(client: TestClient, conductor: Conductor, name: str) -> None:
    for action, settled in (("manage", "manageable"), ("inspect", "inspected"),
                            ("provide", "available")):
        r = client.post(f"/v1/nodes/{name}/actions/{action}")
        assert r.status_code == 202, r.text
        drive(conductor, lambda s=settled: _state(client, name) == s)


def test_full_lifecycle_records_every_transition(client: TestClient, conductor: Conductor) -> None:
    assert client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01")).status_code == 201
    _walk_to_available(client, conductor, "n1")
    _image(client)
    r = client.post("/v1/nodes/n1/actions/deploy", json={"image": "ubuntu-22.04"})
    assert r.status_code == 202 and r.json()["state"] == "deploying"
    drive(conductor, lambda: _state(client, "n1") == "active")
    node = client.get("/v1/nodes/n1").json()
    assert node["image"] == "ubuntu-22.04" and node["power_state"] == "on"
    assert node["progress"] == {"percent": 100, "step": "done"}
    assert client.post("/v1/nodes/n1/actions/undeploy").status_code == 202
    drive(conductor, lambda: _state(client, "n1") == "available")
    assert client.get("/v1/nodes/n1").json()["image"] is None
    transitions = [
        (e["from_state"], e["to_state"])
        for e in client.get("/v1/nodes/n1/events").json()["items"]
        if e["kind"] == "transition"
    ]
    assert transitions == [
        (None, "enrolled"), ("enrolled", "verifying"), ("verifying", "manageable"),
        ("manageable", "inspecting"), ("inspecting", "inspected"),
        ("inspected", "burning-in"), ("burning-in", "available"),
        ("available", "deploying"), ("deploying", "active"), ("active", "releasing"),
        ("releasing", "cleaning"), ("cleaning", "available"),
    ]


def test_illegal_action_is_409_problem_naming_state_and_allowed(client: TestClient) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    r = client.post("/v1/nodes/n1/actions/deploy", json={"image": "nope"})
    assert r.status_code == 409
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["state"] == "enrolled" and body["allowed_actions"] == ["manage"]
    assert "enrolled" in body["detail"] and "manage" in body["detail"]
    assert _state(client, "n1") == "enrolled"


def test_failure_lands_in_failed_state_with_reason(
    client: TestClient, conductor: Conductor
) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01",
                                            driver_info={"fail": "inspect"}))
    client.post("/v1/nodes/n1/actions/manage")
    drive(conductor, lambda: _state(client, "n1") == "manageable")
    client.post("/v1/nodes/n1/actions/inspect")
    drive(conductor, lambda: _state(client, "n1") == "inspect-failed")
    node = client.get("/v1/nodes/n1").json()
    assert "fake driver told to fail inspect" in node["last_error"]
    assert node["allowed_actions"] == ["inspect"]
    errors = [e for e in client.get("/v1/nodes/n1/events").json()["items"]
              if e["kind"] == "error"]
    assert errors and errors[-1]["to_state"] == "inspect-failed"
    assert "fail inspect" in errors[-1]["message"]


def test_deploy_needs_a_known_image(client: TestClient, conductor: Conductor) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    _walk_to_available(client, conductor, "n1")
    r = client.post("/v1/nodes/n1/actions/deploy")
    assert r.status_code == 422 and "image" in r.json()["detail"]
    r = client.post("/v1/nodes/n1/actions/deploy", json={"image": "missing"})
    assert r.status_code == 422 and "missing" in r.json()["detail"]
    assert _state(client, "n1") == "available"


def test_bad_input_is_rejected_and_changes_nothing(client: TestClient) -> None:
    ok = fake_node("n1", "52:54:00:00:00:01")
    assert client.post("/v1/nodes", json=ok).status_code == 201
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**ok, "name": "n2", "colour": "red"}, 422, "colour"),
        ({**fake_node("n2", "52:54:00:00:00:02"), "u_position": "high"}, 422, "u_position"),
        (fake_node("n1", "52:54:00:00:00:09"), 409, "already exists"),
        (fake_node("n3", "52:54:00:00:00:01"), 409, "52:54:00:00:00:01"),
        (fake_node("n4", "not-a-mac"), 422, "MAC"),
        ({**fake_node("n5", "52:54:00:00:00:05"), "rack": "nowhere"}, 422, "nowhere"),
    ]
    for body, status, needle in cases:
        r = client.post("/v1/nodes", json=body)
        assert r.status_code == status, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert needle in r.text
    names = [n["name"] for n in client.get("/v1/nodes").json()["items"]]
    assert names == ["n1"]


def test_bmc_password_is_never_returned(client: TestClient, context: AppContext) -> None:
    r = client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    assert "s3cret-pw" not in r.text
    assert "s3cret-pw" not in client.get("/v1/nodes/n1").text
    assert "s3cret-pw" not in client.get("/v1/nodes/n1/events").text
    from sqlalchemy import text

    with context.db.session() as session:
        stored = session.execute(text("SELECT bmc_password_encrypted FROM nodes")).scalar_one()
    assert stored and "s3cret-pw" not in stored
    assert context.cipher.decrypt(stored) == "s3cret-pw"


def test_filters_and_cursor_pagination(client: TestClient) -> None:
    client.post("/v1/node-classes", json={"name": "gpu", "gpu_count": 8})
    for i in range(7):
        body = fake_node(f"node-{i}", f"52:54:00:00:01:{i:02x}",
                         labels={"pool": "a" if i % 2 else "b"})
        if i < 5:
            body["node_class"] = "gpu"
        assert client.post("/v1/nodes", json=body).status_code == 201
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"class": "gpu", "state": "enrolled", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/nodes", params=params).json()
        seen += [n["name"] for n in page["items"]]
        cursor = page["next"]
        if not cursor:
            break
    assert seen == [f"node-{i}" for i in range(5)]
    labelled = client.get("/v1/nodes", params={"label": "pool=a"}).json()["items"]
    assert [n["name"] for n in labelled] == ["node-1", "node-3", "node-5"]
    assert client.get("/v1/nodes", params={"cursor": "%%%"}).status_code == 422


def test_auth_roles_and_tenant_isolation(client: TestClient, conductor: Conductor) -> None:
    anonymous = client.get("/v1/nodes", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.headers["content-type"].startswith(
        "application/problem+json")
    assert client.get("/v1/nodes", headers={"Authorization": "Bearer wrong"}).status_code == 401
    client.post("/v1/tenants", json={"name": "acme"})
    client.post("/v1/tenants", json={"name": "globex"})
    client.post("/v1/nodes", json=fake_node("mine", "52:54:00:00:00:01", tenant="acme"))
    client.post("/v1/nodes", json=fake_node("theirs", "52:54:00:00:00:02", tenant="globex"))
    member = client.post("/v1/tokens", json={"name": "acme-user", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    viewer = client.post("/v1/tokens", json={"name": "watcher", "role": "viewer"}).json()["token"]
    as_member = {"Authorization": f"Bearer {member}"}
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    listed = client.get("/v1/nodes", headers=as_member).json()["items"]
    assert [n["name"] for n in listed] == ["mine"]
    assert client.get("/v1/nodes/theirs", headers=as_member).status_code == 404
    assert client.post("/v1/nodes/theirs/actions/power-on", headers=as_member).status_code == 404
    assert client.post("/v1/nodes/mine/actions/manage", headers=as_member).status_code == 403
    assert client.post("/v1/tenants", json={"name": "x"}, headers=as_member).status_code == 403
    assert len(client.get("/v1/nodes", headers=as_viewer).json()["items"]) == 2
    assert client.post("/v1/nodes/mine/actions/manage", headers=as_viewer).status_code == 403
    assert client.get("/v1/tokens", headers=as_viewer).status_code == 403


def test_maintenance_blocks_actions_until_cleared(client: TestClient) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    assert client.post("/v1/nodes/n1/actions/maintenance-on").status_code == 422
    r = client.post("/v1/nodes/n1/actions/maintenance-on", json={"reason": "fan swap"})
    assert r.json()["maintenance"] is True and r.json()["maintenance_reason"] == "fan swap"
    r = client.post("/v1/nodes/n1/actions/manage")
    assert r.status_code == 409 and "maintenance" in r.json()["detail"]
    client.post("/v1/nodes/n1/actions/maintenance-off")
    assert client.post("/v1/nodes/n1/actions/manage").status_code == 202


def test_power_actions_go_through_the_conductor(client: TestClient, conductor: Conductor) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    r = client.post("/v1/nodes/n1/actions/power-on")
    assert r.json()["target_power_state"] == "on"
    drive(conductor, lambda: client.get("/v1/nodes/n1").json()["power_state"] == "on")
    assert client.get("/v1/nodes/n1").json()["target_power_state"] is None


def test_unknown_route_and_action_are_problems(client: TestClient) -> None:
    r = client.get("/v1/nope")
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem")
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    r = client.post("/v1/nodes/n1/actions/explode")
    assert r.status_code == 422 and "manage" in r.json()["detail"]
    assert client.get("/healthz").json()["status"] == "ok"
