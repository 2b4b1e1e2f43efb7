"""Attacks on what metalfleet keeps at rest and in the browser: files, cookies, tokens.

The attacker is another account on the conductor host (reads world-readable files), someone
who stole a dashboard cookie (a proxy log, a shared machine, a backup of a browser profile),
or someone holding a token that should be dead. Each test plays that attacker and asserts
the refusal and that nothing was gained or changed.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from metalfleet.config import Settings
from metalfleet.db import models as m
from metalfleet.db.base import as_utc, utcnow
from metalfleet.db.web_session_models import WebSession
from metalfleet.inventory.tokens import hash_token
from metalfleet.runtime import AppContext
from metalfleet.server import bootstrap
from metalfleet.web.auth import COOKIE
from tests.integration.web.test_dashboard_routes import ORIGIN, login, web

__all__ = ["web"]  # the dashboard tests' browser fixture, shared


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A permissive umask, as on many hosts: files must be private despite it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def sign_in(web: TestClient, token: str) -> str:
    """Sign in as a browser would; the cookie's value (what a thief would copy)."""
    login(web, token)
    return str(web.cookies[COOKIE])


def make_token(client: TestClient, name: str, role: str = "operator",
               **extra: str) -> str:
    r = client.post("/v1/tokens", json={"name": name, "role": role, **extra})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def web_sessions(context: AppContext) -> int:
    with context.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(WebSession)) or 0)


def signed_in(app_client: TestClient, session_id: str) -> bool:
    """Does the dashboard take this cookie value? (a stolen cookie, replayed)"""
    with TestClient(app_client.app, cookies={COOKIE: session_id}) as thief:
        return bool(thief.get("/ui/nodes", follow_redirects=False).status_code == 200)


# --- files ------------------------------------------------------------------------------------

def test_data_dir_database_wal_key_and_token_are_private(
        tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALFLEET_SECRET_KEY", raising=False)
    monkeypatch.delenv("METALFLEET_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    context = bootstrap(Settings(data_dir=data))  # SQLite in the data dir, the default
    try:
        with context.db.engine.connect() as conn:  # WAL mode: -wal and -shm exist while open
            assert (data / "metalfleet.db-wal").exists() and (data / "metalfleet.db-shm").exists()
            assert mode(data) == 0o700
            for name in ("metalfleet.db", "metalfleet.db-wal", "metalfleet.db-shm",
                         "secret.key", "admin.token"):
                assert mode(data / name) == 0o600, name
            conn.close()
    finally:
        context.db.dispose()


def test_files_left_readable_are_tightened_at_start_up(
        tmp_path: Path, open_umask: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("METALFLEET_SECRET_KEY", raising=False)
    monkeypatch.delenv("METALFLEET_DATABASE_URL", raising=False)
    data = tmp_path / "data"
    bootstrap(Settings(data_dir=data)).db.dispose()
    token = (data / "admin.token").read_text()
    key = (data / "secret.key").read_bytes()
    (data / "lab").mkdir()
    (data / "lab" / "bmc-state.json").write_text("{}")
    # A restore or a careless cp left everything world-readable.
    for path in (data / "metalfleet.db", data / "secret.key", data / "admin.token",
                 data / "lab" / "bmc-state.json"):
        path.chmod(0o644)
    data.chmod(0o755)
    (data / "lab").chmod(0o755)

    with caplog.at_level(logging.WARNING, logger="metalfleet.private_files"):
        bootstrap(Settings(data_dir=data)).db.dispose()

    assert mode(data) == 0o700 and mode(data / "lab") == 0o700
    for path in (data / "metalfleet.db", data / "secret.key", data / "admin.token",
                 data / "lab" / "bmc-state.json"):
        assert mode(path) == 0o600, path
    assert "tightened the mode of" in caplog.text and str(data / "secret.key") in caplog.text
    # Tightening changed no content: the same admin token and key still work.
    assert (data / "admin.token").read_text() == token and (data / "secret.key").read_bytes() == key


# --- cookies ----------------------------------------------------------------------------------

def test_the_cookie_is_a_session_id_not_the_token_and_no_bearer(
        client: TestClient, web: TestClient, context: AppContext, admin_token: str) -> None:
    session_id = sign_in(web, admin_token)
    assert session_id != admin_token and admin_token not in session_id
    # The stolen cookie used against the API as a bearer token: refused, nothing listed.
    with TestClient(client.app) as thief:
        r = thief.get("/v1/tokens", headers={"Authorization": f"Bearer {session_id}"})
        assert r.status_code == 401 and r.headers["content-type"].startswith(
            "application/problem+json")
        assert thief.post("/v1/tokens", json={"name": "mine", "role": "admin"},
                          headers={"Authorization": f"Bearer {session_id}"}).status_code == 401
    # The database holds only the session id's hash.
    with context.db.session() as session:
        rows = list(session.scalars(select(WebSession)))
        names = set(session.scalars(select(m.ApiToken.name)))
    assert [row.id_hash for row in rows] == [hash_token(session_id)]
    assert "mine" not in names


def test_a_stolen_session_dies_when_expired_or_idle(
        client: TestClient, web: TestClient, context: AppContext, admin_token: str) -> None:
    expired = sign_in(web, admin_token)
    with TestClient(client.app) as other:
        idle = sign_in(other, admin_token)
    assert signed_in(client, expired) and signed_in(client, idle)
    past = utcnow() - timedelta(seconds=1)
    with context.db.session() as session:
        session.execute(update(WebSession).where(WebSession.id_hash == hash_token(expired))
                        .values(expires_at=past))
        session.execute(update(WebSession).where(WebSession.id_hash == hash_token(idle))
                        .values(last_seen_at=utcnow() - timedelta(
                            seconds=context.settings.web_session_idle_s + 1)))
    assert not signed_in(client, expired) and not signed_in(client, idle)
    r = web.get("/ui/nodes", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    # A dead session cannot post either, and it is gone from the table.
    with TestClient(client.app, cookies={COOKIE: idle}) as thief:
        r = thief.post("/ui/bulk", data={"confirmed": "1", "action": "maintenance-on",
                                         "reason": "x", "node": "n1"}, headers=ORIGIN,
                       follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
    assert web_sessions(context) == 0


def test_using_a_session_keeps_it_alive_and_logout_kills_it(
        client: TestClient, web: TestClient, context: AppContext, admin_token: str) -> None:
    session_id = sign_in(web, admin_token)
    seen = utcnow() - timedelta(seconds=context.settings.web_session_idle_s - 5)
    with context.db.session() as session:
        session.execute(update(WebSession).values(last_seen_at=seen))
    assert web.get("/ui/nodes").status_code == 200  # a use, just inside the idle timeout
    with context.db.session() as session:
        row = session.scalars(select(WebSession)).one()
        assert as_utc(row.last_seen_at) > seen + timedelta(seconds=30)
    assert web.post("/ui/logout", headers=ORIGIN, follow_redirects=False).status_code == 303
    assert web_sessions(context) == 0
    assert not signed_in(client, session_id)  # a copy kept from before the logout


def test_revoking_or_expiring_the_token_ends_its_sessions(
        client: TestClient, web: TestClient, context: AppContext) -> None:
    revoked = sign_in(web, make_token(client, "ops-1"))
    with TestClient(client.app) as other:
        lapsed = sign_in(other, make_token(client, "ops-2"))
    assert signed_in(client, revoked) and signed_in(client, lapsed)
    assert client.delete("/v1/tokens/ops-1").status_code == 204
    with context.db.session() as session:
        session.execute(update(m.ApiToken).where(m.ApiToken.name == "ops-2")
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
    assert not signed_in(client, revoked) and not signed_in(client, lapsed)
    assert web_sessions(context) == 0


def test_cookie_is_secure_behind_tls_and_httponly_strict(
        client: TestClient, web: TestClient, context: AppContext, admin_token: str) -> None:
    r = web.post("/ui/login", data={"token": admin_token}, headers=ORIGIN,
                 follow_redirects=False)
    plain = r.headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=strict" in plain and "secure" not in plain
    context.settings.behind_tls = True
    r = web.post("/ui/login", data={"token": admin_token}, headers=ORIGIN,
                 follow_redirects=False)
    cookie = r.headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    assert "max-age=43200" in cookie  # 12 h, the session's absolute lifetime
    logout = web.post("/ui/logout", headers=ORIGIN, follow_redirects=False)
    assert "; secure" in logout.headers["set-cookie"].lower()


def test_cross_site_login_is_refused_and_opens_no_session(
        client: TestClient, web: TestClient, context: AppContext, admin_token: str) -> None:
    r = web.post("/ui/login", data={"token": admin_token},
                 headers={"Origin": "http://evil.example"}, follow_redirects=False)
    assert r.status_code == 403 and COOKIE not in r.headers.get("set-cookie", "")
    assert web_sessions(context) == 0


# --- tokens -----------------------------------------------------------------------------------

def test_a_call_records_last_used_at_once_a_minute(
        client: TestClient, context: AppContext) -> None:
    secret = make_token(client, "ci-bot", "viewer")

    def last_used() -> tuple[datetime | None, datetime]:
        with context.db.session() as session:
            token = session.scalars(select(m.ApiToken).where(m.ApiToken.name == "ci-bot")).one()
            return token.last_used_at, token.updated_at

    used, updated = last_used()
    assert used is None
    with TestClient(client.app) as bot:
        bot.headers["Authorization"] = f"Bearer {secret}"
        assert bot.get("/v1/nodes").status_code == 200
        first, updated_after = last_used()
        assert first is not None and abs(utcnow() - as_utc(first)) < timedelta(seconds=30)
        assert updated_after == updated  # a use is not an admin's change
        assert bot.get("/v1/nodes").status_code == 200
        assert last_used()[0] == first  # not a write per request
    listed = {t["name"]: t for t in client.get("/v1/tokens").json()["items"]}
    assert listed["ci-bot"]["last_used_at"] is not None


def test_an_expired_token_is_refused_with_a_problem_that_says_so(
        client: TestClient, web: TestClient, context: AppContext) -> None:
    past = (utcnow() - timedelta(minutes=5)).isoformat()
    secret = make_token(client, "old", "admin", expires_at=past)
    with TestClient(client.app) as holder:
        r = holder.post("/v1/tokens", json={"name": "new", "role": "admin"},
                        headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert r.headers["content-type"].startswith("application/problem+json")
    login = web.post("/ui/login", data={"token": secret}, headers=ORIGIN, follow_redirects=False)
    assert login.status_code == 401 and "expired" in login.text
    assert web_sessions(context) == 0
    names = {t["name"] for t in client.get("/v1/tokens").json()["items"]}
    assert "new" not in names
