"""Dashboard helpers without a database: redirects, the CSRF origin check, filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.requests import Request

from metalfleet.inventory import schemas as s
from metalfleet.inventory.tokens import Principal
from metalfleet.web import actions, auth, filters


def request(headers: dict[str, str], host: str = "dash.example:8080") -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in {"host": host, **headers}.items()]
    return Request({"type": "http", "method": "POST", "scheme": "http", "path": "/ui/bulk",
                    "query_string": b"", "headers": raw, "server": ("dash.example", 8080)})


@pytest.mark.parametrize(("value", "expected"), [
    ("/ui/nodes?state=active", "/ui/nodes?state=active"), ("//evil.example/x", "/"),
    ("https://evil.example/", "/"), ("javascript:alert(1)", "/"), ("/\\evil", "/"),
    (None, "/"), ("", "/"),
])
def test_safe_next_keeps_only_local_paths(value: str | None, expected: str) -> None:
    assert auth.safe_next(value) == expected


@pytest.mark.parametrize(("headers", "allowed"), [
    ({"origin": "http://dash.example:8080"}, True),
    ({"origin": "HTTP://DASH.EXAMPLE:8080"}, True),
    ({"origin": "http://dash.example:9090"}, False),
    ({"origin": "https://dash.example:8080"}, False),
    ({"origin": "null"}, False),
    ({}, False),
    ({"referer": "http://dash.example:8080/ui/nodes"}, True),
    ({"referer": "http://evil.example/ui/nodes"}, False),
    ({"origin": "http://evil.example", "referer": "http://dash.example:8080/"}, False),
])
def test_same_origin_is_the_csrf_check(headers: dict[str, str], allowed: bool) -> None:
    assert auth.same_origin(request(headers)) is allowed


def test_state_tones_cover_every_family() -> None:
    assert [filters.tone(x) for x in ("active", "available", "deploying", "clean-failed",
                                      "enrolled", "bogus")] == [
        "active", "free", "work", "failed", "idle", "idle"]


def test_sizes_and_ages_read_well() -> None:
    assert filters.size(3_840_000_000_000) == "3.5 TiB"
    assert filters.size(81559, "MiB") == "79.6 GiB"
    assert filters.size(None) == "—"
    assert filters.ago(datetime.now(UTC) - timedelta(minutes=5)) == "5 min ago"
    assert filters.ago(datetime.now(UTC).replace(tzinfo=None)) == "0 s ago"


def test_roles_decide_which_actions_are_offered() -> None:
    viewer = Principal("v", s.Role.VIEWER)
    member = Principal("m", s.Role.MEMBER, tenant_id="t1")
    admin = Principal("a", s.Role.ADMIN)
    assert not actions.permitted(viewer, "power-on")
    assert actions.permitted(member, "deploy") and not actions.permitted(member, "manage")
    assert all(actions.permitted(admin, action) for action in actions.BULK_ACTIONS)
