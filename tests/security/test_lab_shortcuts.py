"""Attacks on the lab's shortcuts: make a production conductor read or zero a host file.

The lab hardware type runs the agent's code in the conductor's process on a "hardware root"
path, and file:// images are read from the conductor's disk. An operator token (or a stolen
one) that could set those on a production server could zero /dev/sda or read any file. Each
test sends what an attacker would and asserts the refusal and that nothing was stored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from metalfleet.core.errors import DriverError, ValidationError
from metalfleet.db import models as m
from metalfleet.drivers import registry
from metalfleet.drivers.base import BmcCredentials, NodeContext
from metalfleet.inventory import schemas as s
from metalfleet.inventory import tokens
from metalfleet.runtime import AppContext, LabAllowance
from tests.conftest import fake_node

LAB_NODE_PROBLEM = "lab shortcut"


def _as(context: AppContext, role: s.Role) -> dict[str, str]:
    with context.db.session() as session:
        tenant = None
        if role is s.Role.MEMBER:
            session.add(m.Tenant(name="acme"))
            session.flush()
            tenant = "acme"
        _, secret = tokens.create_token(session, s.TokenIn(name=f"t-{role.value}", role=role,
                                                           tenant=tenant))
    return {"Authorization": f"Bearer {secret}"}


def _count(context: AppContext, model: Any) -> int:
    with context.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _lab_node(name: str, root: str, **extra: Any) -> dict[str, Any]:
    body = fake_node(name, "52:54:00:00:00:01", hardware_type="lab",
                     driver_info={"hardware_root": root})
    body.update(extra)
    return body


def test_production_refuses_the_lab_hardware_type_and_paths(
        client: TestClient, context: AppContext) -> None:
    before = _count(context, m.Node)
    for body in (
        _lab_node("evil-1", "/"),
        fake_node("evil-2", "52:54:00:00:00:02", hardware_type="lab"),
        fake_node("evil-3", "52:54:00:00:00:03", driver_info={"hardware_root": "/"}),
    ):
        response = client.post("/v1/nodes", json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert LAB_NODE_PROBLEM in response.json()["detail"]
        assert "--lab" in response.json()["detail"]
    assert _count(context, m.Node) == before
    # An existing node cannot be pointed at a host path either.
    assert client.post("/v1/nodes", json=fake_node("ok", "52:54:00:00:00:04")).status_code == 201
    patched = client.patch("/v1/nodes/ok", json={"driver_info": {"hardware_root": "/etc"}})
    assert patched.status_code == 422
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "ok"))
        assert node is not None and "hardware_root" not in (node.driver_info or {})


def test_production_refuses_file_images_through_every_door(
        client: TestClient, context: AppContext) -> None:
    location = "file:///etc/shadow"
    created = client.post("/v1/images", json={"name": "shadow", "location": location})
    assert created.status_code == 422 and LAB_NODE_PROBLEM in created.json()["detail"]
    assert client.post("/v1/images", json={
        "name": "web", "location": "https://images.example/x.raw"}).status_code == 201
    patched = client.patch("/v1/images/web", json={"location": location})
    assert patched.status_code == 422
    assert client.get("/v1/images/web").json()["location"].startswith("https://")
    # The fleet file goes through the same gate: nothing of it is applied.
    fleet = {"images": [{"name": "f-img", "location": location}],
             "nodes": [_lab_node("f-node", "/")]}
    applied = client.post("/v1/fleet/apply", json={"fleet": fleet})
    assert applied.status_code == 422
    assert client.get("/v1/images/f-img").status_code == 404
    assert client.get("/v1/nodes/f-node").status_code == 404


def test_without_lab_there_are_no_lab_routes(client: TestClient) -> None:
    assert client.get("/v1/lab/faults").status_code == 404
    assert client.post("/v1/lab/faults", json={"node": "x", "kind": "fan"}).status_code == 404
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/v1/lab")]


def test_in_a_lab_only_admins_and_only_inside_the_lab_folder(
        client: TestClient, context: AppContext, lab_enabled: LabAllowance,
        tmp_path: Path) -> None:
    inside = lab_enabled.root / "nodes" / "n1"
    inside.mkdir(parents=True)
    operator = _as(context, s.Role.OPERATOR)
    denied = client.post("/v1/nodes", json=_lab_node("op-node", str(inside)), headers=operator)
    assert denied.status_code == 422 and "only an admin" in denied.json()["detail"]
    escape = tmp_path / "outside"
    escape.mkdir()
    link = lab_enabled.root / "nodes" / "sneaky"
    link.symlink_to("/etc")
    for path in ("/", "/etc", str(lab_enabled.root / ".." / ".."), str(escape), str(link)):
        response = client.post("/v1/nodes", json=_lab_node("escape", path))
        assert response.status_code == 422, path
        assert "outside the lab's data folder" in response.json()["detail"]
    disk = client.post("/v1/nodes", json=_lab_node("disk", str(inside),
                                                   driver_info={"hardware_root": str(inside),
                                                                "disk": "../../../dev/sda"}))
    assert disk.status_code == 422
    for location in ("file:///etc/passwd", (link / "passwd").as_uri(),
                     "file://attacker.example/share/x.raw"):
        image = client.post("/v1/images", json={"name": "img", "location": location})
        assert image.status_code == 422, location
    assert client.get("/v1/nodes/escape").status_code == 404
    ok = client.post("/v1/nodes", json=_lab_node("good", str(inside)))
    assert ok.status_code == 201, ok.text
    assert client.post("/v1/images", json={
        "name": "lab-img", "location": (lab_enabled.root / "x.raw").as_uri()}).status_code == 201


def test_lab_faults_are_operator_only(client: TestClient, context: AppContext,
                                      lab_enabled: LabAllowance) -> None:
    for role in (s.Role.MEMBER, s.Role.VIEWER):
        headers = _as(context, role)
        assert client.get("/v1/lab/faults", headers=headers).status_code == 403
        assert client.post("/v1/lab/faults", json={"node": "x", "kind": "fan"},
                           headers=headers).status_code == 403


def _node_context(root: Path, disk: str = "dev/nvme0n1") -> NodeContext:
    return NodeContext(name="victim", uuid="u-1", bmc=BmcCredentials(driver="redfish",
                       address="https://127.0.0.1:1"),
                       driver_info={"hardware_root": str(root), "disk": disk})


def test_the_lab_driver_itself_stays_in_its_folder(lab_enabled: LabAllowance,
                                                  tmp_path: Path) -> None:
    """Defence in depth: a row written past the API (SQL, an old database) still cannot make
    the conductor wipe a host path."""
    victim = tmp_path / "host-disk"
    victim.write_bytes(b"precious" * 1024)
    hardware = registry.get_hardware_type("lab")
    with pytest.raises(DriverError, match="outside the lab's folder"):
        hardware.clean.clean(_node_context(tmp_path))
    inside = lab_enabled.root / "nodes" / "n2"
    (inside / "dev").mkdir(parents=True)
    os.symlink(victim, inside / "dev" / "nvme0n1")
    with pytest.raises(DriverError, match="outside its hardware root"):
        hardware.clean.clean(_node_context(inside))
    assert victim.read_bytes() == b"precious" * 1024


def test_a_process_without_the_lab_cannot_run_a_lab_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(registry.FACTORIES, "lab", raising=False)
    registry.get_hardware_type.cache_clear()
    try:
        with pytest.raises(ValidationError, match="only in a metalfleet started with --lab"):
            registry.get_hardware_type("lab")
    finally:
        registry.get_hardware_type.cache_clear()
