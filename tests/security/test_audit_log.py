"""Attacks on the audit log: go unrecorded, smuggle secrets into it, rewrite it, read it.

Every mutating API and dashboard call leaves one append-only row (who, from where, what,
which resource, how it ended); refused calls most of all. The table refuses UPDATE and
DELETE in the database itself, and only admins read it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from metalfleet.api.audit import AuditMiddleware, target_from
from metalfleet.db.audit_models import AuditEntry
from metalfleet.runtime import AppContext
from tests.conftest import fake_node

ORIGIN = {"Origin": "http://testserver"}
COLUMNS = ["id", "time", "principal", "role", "tenant", "node", "source", "method", "path",
           "target", "status", "request_id"]


def rows(context: AppContext) -> list[AuditEntry]:
    with context.db.session() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def raw_dump(context: AppContext) -> str:
    """Every stored value of every audit row, as the database holds it."""
    with context.db.engine.connect() as conn:
        found = conn.execute(text("SELECT * FROM audit_log")).all()
    return "\n".join(" | ".join(str(value) for value in row) for row in found)


def token(client: TestClient, name: str, role: str, tenant: str | None = None) -> str:
    body: dict[str, Any] = {"name": name, "role": role}
    if tenant:
        body["tenant"] = tenant
    r = client.post("/v1/tokens", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


@pytest.fixture
def member(client: TestClient) -> str:
    assert client.post("/v1/tenants", json={"name": "acme"}).status_code == 201
    return token(client, "acme-user", "member", "acme")


@pytest.fixture
def web(client: TestClient) -> Iterator[TestClient]:
    """A browser: cookies only, no bearer header."""
    with TestClient(client.app) as browser:
        yield browser


def test_members_refused_delete_is_recorded_with_its_principal(
    client: TestClient, context: AppContext, member: str
) -> None:
    assert client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01")).status_code == 201
    r = client.delete("/v1/nodes/n1", headers={"Authorization": f"Bearer {member}",
                                               "X-Request-ID": "attack-42"})
    assert r.status_code == 403
    assert r.headers["X-Request-ID"] == "attack-42"
    assert client.get("/v1/nodes/n1").status_code == 200  # nothing changed
    last = rows(context)[-1]
    assert (last.principal, last.role, last.tenant) == ("acme-user", "member", "acme")
    assert (last.method, last.path, last.target, last.status) == (
        "DELETE", "/v1/nodes/n1", "n1", 403)
    assert last.request_id == "attack-42" and last.source == "testclient"
    assert last.time is not None


def test_anonymous_post_with_a_bad_token_is_recorded_as_anonymous_401(
    client: TestClient, context: AppContext
) -> None:
    before = len(rows(context))
    r = client.post("/v1/tenants", json={"name": "evil"},
                    headers={"Authorization": "Bearer mf_guessed-token"})
    assert r.status_code == 401
    r = client.delete("/v1/tokens/admin", headers={"Authorization": ""})
    assert r.status_code == 401
    found = rows(context)[before:]
    assert [(e.principal, e.role, e.status, e.method) for e in found] == [
        ("anonymous", None, 401, "POST"), ("anonymous", None, 401, "DELETE")]
    assert found[1].target == "admin"
    assert client.get("/v1/tenants/evil").status_code == 404
    assert "mf_guessed-token" not in raw_dump(context)


def test_no_secret_reaches_any_column(client: TestClient, context: AppContext,
                                      admin_token: str) -> None:
    secret = token(client, "ci-bot", "operator")
    r = client.post("/v1/nodes?password=qs-secret-value&token=qs-token-value",
                    json=fake_node("n2", "52:54:00:00:00:02"))
    assert r.status_code == 201
    client.patch("/v1/nodes/n2", json={"bmc": {"password": "body-secret-pw"}})
    client.post("/v1/nodes", json={"name": "n3", "bmc": {"password": "refused-secret-pw"}},
                headers={"Cookie": "metalfleet_session=cookie-secret-value"})
    assert len(rows(context)) >= 4
    stored = raw_dump(context)
    for leaked in (secret, secret[10:], admin_token, admin_token[10:], "s3cret-pw",
                   "body-secret-pw", "refused-secret-pw", "qs-secret-value", "qs-token-value",
                   "cookie-secret-value", "Bearer"):
        assert leaked not in stored, leaked
    created = [e for e in rows(context) if e.path == "/v1/nodes" and e.status == 201]
    assert created[0].target == "n2"  # the create's name, and nothing else of its body


@pytest.mark.parametrize("statement", [
    "UPDATE audit_log SET principal = 'someone-else'",
    "DELETE FROM audit_log",
])
def test_the_database_refuses_to_rewrite_history(client: TestClient, context: AppContext,
                                                 statement: str) -> None:
    client.post("/v1/tenants", json={"name": "acme"})
    before = raw_dump(context)
    assert before
    with pytest.raises(DBAPIError, match="append-only"), context.db.engine.begin() as conn:
        conn.execute(text(statement))
    assert raw_dump(context) == before


def test_the_database_refuses_to_empty_the_table(client: TestClient, context: AppContext) -> None:
    """PostgreSQL's TRUNCATE skips DELETE triggers (its own trigger refuses it); SQLite has no
    TRUNCATE, and its unqualified DELETE (the "truncate optimisation") still fires the trigger."""
    client.post("/v1/tenants", json={"name": "acme"})
    before = raw_dump(context)
    statement = "DELETE FROM audit_log" if context.db.is_sqlite else "TRUNCATE audit_log"
    with pytest.raises(DBAPIError, match="append-only"), context.db.engine.begin() as conn:
        conn.execute(text(statement))
    assert raw_dump(context) == before


def test_only_admins_read_the_audit_log(client: TestClient, context: AppContext,
                                        member: str) -> None:
    operator = token(client, "ops", "operator")
    viewer = token(client, "watcher", "viewer")
    for secret in (member, operator, viewer):
        for path in ("/v1/audit", "/v1/audit/export"):
            r = client.get(path, headers={"Authorization": f"Bearer {secret}"})
            assert r.status_code == 403, (path, r.text)
            assert "request_id" not in r.text and "items" not in r.text
    anonymous = client.get("/v1/audit", headers={"Authorization": ""})
    assert anonymous.status_code == 401
    r = client.get("/v1/audit")
    assert r.status_code == 200 and r.json()["items"]


def test_dashboard_posts_are_recorded(client: TestClient, web: TestClient,
                                      context: AppContext, admin_token: str) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    bad = web.post("/ui/login", data={"token": "mf_wrong-guess"}, headers=ORIGIN)
    assert bad.status_code == 401
    r = web.post("/ui/login", data={"token": admin_token, "next": "/ui/nodes"},
                 headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303
    r = web.post("/ui/nodes/n1/actions/manage", data={"confirmed": "1"}, headers=ORIGIN,
                 follow_redirects=False)
    assert r.status_code == 303
    cross_site = web.post("/ui/nodes/n1/actions/manage", data={"confirmed": "1"},
                          headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert cross_site.status_code == 403
    found = [e for e in rows(context) if e.path.startswith("/ui/")]
    assert [(e.path, e.status) for e in found] == [
        ("/ui/login", 401), ("/ui/login", 303),
        ("/ui/nodes/n1/actions/manage", 303), ("/ui/nodes/n1/actions/manage", 403)]
    action = found[2]
    assert (action.principal, action.role, action.method, action.target) == (
        "admin", "admin", "POST", "n1")
    assert found[0].principal == "anonymous"
    stored = raw_dump(context)
    assert admin_token not in stored and "mf_wrong-guess" not in stored


def test_agent_protocol_and_reads_are_not_audit_rows(client: TestClient,
                                                     context: AppContext) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    before = len(rows(context))
    client.post("/v1/agent/lookup", json={"macs": ["52:54:00:00:00:01"]})
    client.post("/v1/agent/heartbeat/n1", json={})
    client.get("/v1/nodes")
    client.get("/v1/boot/ipxe?mac=52:54:00:00:00:01")
    assert len(rows(context)) == before


def test_hostile_request_ids_are_replaced(client: TestClient, context: AppContext) -> None:
    for hostile in ("x" * 200, "a b", "id;DROP TABLE audit_log", "<script>"):
        r = client.post("/v1/tenants", json={"name": "acme"}, headers={"X-Request-ID": hostile})
        echoed = r.headers["X-Request-ID"]
        assert echoed != hostile and len(echoed) == 32 and echoed.isalnum()
        assert rows(context)[-1].request_id == echoed
    assert hostile not in raw_dump(context)


def test_a_failing_audit_write_neither_breaks_nor_leaks(
    client: TestClient, context: AppContext, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: AuditMiddleware, entry: AuditEntry) -> None:
        raise RuntimeError(f"database down while writing {entry.principal} s3cret-pw")

    monkeypatch.setattr(AuditMiddleware, "_write", broken)
    with caplog.at_level(logging.ERROR, logger="metalfleet.api.audit"):
        r = client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    assert r.status_code == 201 and client.get("/v1/nodes/n1").status_code == 200
    assert "could not record POST /v1/nodes (RuntimeError)" in caplog.text
    assert "s3cret-pw" not in caplog.text


def test_search_filters_and_pages_newest_first(client: TestClient, member: str) -> None:
    for name in ("n1", "n2", "n3"):
        client.post("/v1/nodes", json=fake_node(name, f"52:54:00:00:00:0{name[1]}"))
    client.delete("/v1/nodes/n2", headers={"Authorization": f"Bearer {member}"})
    refused = client.get("/v1/audit", params={"outcome": "refused"}).json()["items"]
    assert [(e["principal"], e["target"], e["status"]) for e in refused] == [
        ("acme-user", "n2", 403)]
    mine = client.get("/v1/audit", params={"principal": "acme-user"}).json()["items"]
    assert mine == refused
    n2 = client.get("/v1/audit", params={"target": "n2"}).json()["items"]
    assert [e["method"] for e in n2] == ["DELETE", "POST"]
    page = client.get("/v1/audit", params={"path": "/v1/nodes", "limit": 2}).json()
    older = client.get("/v1/audit", params={"path": "/v1/nodes", "limit": 2,
                                            "cursor": page["next"]}).json()
    ids = [e["id"] for e in page["items"] + older["items"]]
    assert len(ids) == 4 and ids == sorted(ids, reverse=True) and older["next"] is None
    assert client.get("/v1/audit", params={"cursor": "nope"}).status_code == 422
    future = client.get("/v1/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["items"] == []
    lines = client.get("/v1/audit/export", params={"method": "DELETE"})
    assert lines.headers["content-type"].startswith("application/x-ndjson")
    assert [line for line in lines.text.splitlines() if line] and all(
        '"method":"DELETE"' in line for line in lines.text.splitlines() if line)


def test_node_credential_reports_are_recorded_only_when_refused(
    client: TestClient, context: AppContext
) -> None:
    for name, mac in (("n1", "52:54:00:00:00:01"), ("n2", "52:54:00:00:00:02")):
        assert client.post("/v1/nodes", json=fake_node(name, mac)).status_code == 201
    issued = client.post("/v1/nodes/n1/monitor-credential")
    assert issued.status_code == 201
    credential = issued.json()["credential"]
    report = {"source": "agent", "checks_run": ["gpu-count"], "findings": []}
    before = len(rows(context))
    own = client.post("/v1/nodes/n1/health-reports", json=report,
                      headers={"Authorization": f"Bearer {credential}"})
    assert own.status_code == 200
    assert len(rows(context)) == before  # routine telemetry: the health signals record it
    other = client.post("/v1/nodes/n2/health-reports", json=report,
                        headers={"Authorization": f"Bearer {credential}"})
    assert other.status_code == 403
    by_operator = client.post("/v1/nodes/n2/health-reports", json=report)
    assert by_operator.status_code == 200
    found = rows(context)[before:]
    assert [(e.target, e.status) for e in found] == [("n2", 403), ("n2", 200)]
    assert found[1].principal == "admin"
    assert credential not in raw_dump(context) and credential[10:] not in raw_dump(context)


def test_only_name_like_values_leave_a_body() -> None:
    json_type, form_type = "application/json", "application/x-www-form-urlencoded"
    assert target_from({}, json_type, b'{"name": "n1", "password": "pw"}') == "n1"
    for hostile in (b'{"name": "pw=s3cret; rm -rf /"}', b'{"name": ["n1"]}', b'{"name": 7}',
                    b'{"token": "mf_x"}', b"not json", b'{"name": "' + b"a" * 100 + b'"}'):
        assert target_from({}, json_type, hostile) is None, hostile
    assert target_from({}, form_type, b"node=n1&node=n2&token=mf_x") == "n1,n2"
    assert target_from({}, form_type, b"token=mf_secret&next=%2F") is None
    assert target_from({}, "application/octet-stream", b'{"name": "n1"}') is None
    assert target_from({"name": "c1", "node": "n7", "action": "drain"}, json_type, b"") == "n7"
    assert target_from({"name": "n1", "action": "deploy"}, json_type, b"") == "n1"
