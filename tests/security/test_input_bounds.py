"""Attacker tests: bounded input. Oversized bodies, documents and image verifies are refused
with a clear 413/422 and leave nothing behind; verify never hands out a file's digest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.conftest import fake_node

MIB = 1 << 20


def sites(context: AppContext) -> int:
    with context.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(m.Site)) or 0)


def test_oversized_json_body_is_refused_before_the_app(
    client: TestClient, context: AppContext,
) -> None:
    before = sites(context)
    big = {"name": "huge", "description": "x" * (2 * MIB)}
    r = client.post("/v1/sites", json=big)
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert "1048576 bytes (1 MiB)" in r.json()["detail"]
    assert sites(context) == before
    assert client.get("/v1/sites/huge").status_code == 404


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    yield b'{"name": "chunky", "description": "'
    sent = 0
    while sent < total:
        yield b"x" * size
        sent += size
    yield b'"}'


def test_chunked_oversized_body_is_counted_and_refused(
    client: TestClient, context: AppContext,
) -> None:
    before = sites(context)
    r = client.post("/v1/sites", content=chunks(2 * MIB),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    assert "limit" in r.json()["detail"]
    assert sites(context) == before
    # A small chunked body still reaches the app whole.
    r = client.post("/v1/sites", content=chunks(1024),
                    headers={"content-type": "application/json"})
    assert r.status_code == 201, r.text
    assert sites(context) == before + 1


def test_the_limit_is_a_setting_and_uploads_have_their_own(
    client: TestClient, context: AppContext,
) -> None:
    context.settings.max_request_bytes = 100
    r = client.post("/v1/sites", json={"name": "s", "description": "y" * 200})
    assert r.status_code == 413 and "100 bytes" in r.json()["detail"]
    # POST /v1/images/upload streams under max_upload_bytes, not this limit.
    r = client.post("/v1/images/upload", params={"name": "disk"}, content=b"\0" * 4096)
    assert r.status_code == 201, r.text


def test_health_reports_are_bounded(client: TestClient, context: AppContext) -> None:
    assert client.post("/v1/nodes", json=fake_node("n1", "52:54:00:aa:00:01")).status_code \
        == 201
    finding = {"check": "gpu-xid", "component": "GPU0", "severity": "warning"}
    too_many = [{**finding, "component": f"GPU{i}"} for i in range(300)]
    for body in ({"source": "operator", "findings": too_many},
                 {"source": "operator", "findings": [{**finding, "message": "m" * 5000}]},
                 {"source": "operator", "findings": [{**finding,
                                                      "evidence": {"e": "v" * 20000}}]},
                 {"source": "operator", "findings": [{**finding, "component": "G" * 200}]},
                 {"source": "operator", "findings": [], "checks_run": ["ok"] * 300}):
        r = client.post("/v1/nodes/n1/health-reports", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"].startswith(("findings", "checks_run"))
    with context.db.session() as session:
        assert session.scalar(select(func.count()).select_from(hm.HealthSignal)) == 0


def test_node_documents_are_bounded(client: TestClient, context: AppContext) -> None:
    assert client.post("/v1/nodes", json=fake_node("n1", "52:54:00:aa:00:02")).status_code \
        == 201
    for patch in ({"labels": {f"k{i}": "v" for i in range(100)}},
                  {"labels": {"k": "v" * 1000}},
                  {"driver_info": {"blob": "z" * 40000}}):
        r = client.patch("/v1/nodes/n1", json=patch)
        assert r.status_code == 422, r.text
    node = client.get("/v1/nodes/n1").json()
    assert len(node["labels"]) < 64
    with context.db.session() as session:
        stored = session.scalar(select(m.Node).where(m.Node.name == "n1"))
        assert stored is not None and "blob" not in (stored.driver_info or {})


def token(client: TestClient, role: str, tenant: str | None = None) -> dict[str, str]:
    body = {"name": f"t-{role}", "role": role, **({"tenant": tenant} if tenant else {})}
    r = client.post("/v1/tokens", json=body)
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}


def image_row(context: AppContext, name: str, location: str, sha256: str | None) -> None:
    with context.db.session() as session:
        session.add(m.Image(name=name, location=location, sha256=sha256, disk_format="raw"))
        session.commit()


def test_verify_is_operator_only_and_never_leaks_a_digest(
    client: TestClient, context: AppContext, tmp_path: Path,
) -> None:
    content = b"\0" * 8192
    assert client.post("/v1/images/upload", params={"name": "ours"},
                       content=content).status_code == 201
    assert client.post("/v1/tenants", json={"name": "acme"}).status_code == 201
    for headers in (token(client, "member", "acme"), token(client, "viewer")):
        assert client.post("/v1/images/ours/verify", headers=headers).status_code == 403
    assert client.post("/v1/images/ours/verify").json()["ok"] is True

    # Rows pointing elsewhere (an older row, a direct database write): never read.
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"private key material")
    secret_digest = hashlib.sha256(secret.read_bytes()).hexdigest()
    db_file = context.settings.data_dir / "metalfleet.db"
    for name, location in (("stolen", secret.as_uri()),
                           ("escape", "http://testserver/images/../metalfleet.db"),
                           ("escape2", "http://testserver/images/%2e%2e/metalfleet.db")):
        image_row(context, name, location, "0" * 64)
        r = client.post(f"/v1/images/{name}/verify")
        assert r.status_code == 422, r.text
        assert "not read" in r.json()["detail"]
        assert secret_digest not in r.text and "actual" not in r.json()
        if db_file.exists():
            assert hashlib.sha256(db_file.read_bytes()).hexdigest() not in r.text

    # A mismatch on our own file says so, without the digest it computed.
    with context.db.session() as session:
        ours = session.scalar(select(m.Image).where(m.Image.name == "ours"))
        assert ours is not None
        ours.sha256 = "1" * 64
        session.commit()
    r = client.post("/v1/images/ours/verify")
    assert r.status_code == 422
    assert r.json()["mismatches"]["sha256"] == {"registered": "1" * 64, "actual": "mismatch"}
    assert hashlib.sha256(content).hexdigest() not in r.text

    # Files above the cap are not hashed at all.
    context.settings.max_upload_bytes = 1000
    r = client.post("/v1/images/ours/verify")
    assert r.status_code == 413 and "not verified" in r.json()["detail"]


def test_fleet_files_get_a_larger_but_fixed_cap(client: TestClient) -> None:
    padding = {"description": "p" * (2 * MIB)}  # over the default, under the fleet cap
    r = client.post("/v1/fleet/plan", json={"fleet": {"sites": [{"name": "s", **padding}]}})
    assert r.status_code != 413, r.text
    r = client.post("/v1/fleet/plan", content=b" " * (33 * MIB),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
