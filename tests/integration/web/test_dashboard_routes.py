"""The dashboard's routes on SQLite and PostgreSQL: sign-in, isolation, CSRF, actions."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.conductor.worker import Conductor
from metalfleet.db import models as m
from metalfleet.db.health_models import HealthSignal, RepairTicket
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node

ORIGIN = {"Origin": "http://testserver"}
PAGES = ["/", "/ui/racks", "/ui/nodes", "/ui/nodes/n1", "/ui/tenants", "/ui/images"]


@pytest.fixture
def web(client: TestClient) -> Iterator[TestClient]:
    """A browser-like client of the same app: no bearer header, cookies only."""
    with TestClient(client.app) as browser:
        yield browser


def login(web: TestClient, token: str) -> None:
    r = web.post("/ui/login", data={"token": token, "next": "/ui/nodes"}, headers=ORIGIN,
                 follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/nodes", r.text


def act(web: TestClient, name: str, action: str, **fields: str) -> dict[str, list[str]]:
    """Post a confirmed action; returns the flash message of the redirect."""
    r = web.post(f"/ui/nodes/{name}/actions/{action}", data={"confirmed": "1", **fields},
                 headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303, r.text
    return parse_qs(urlsplit(r.headers["location"]).query)


def state(client: TestClient, name: str) -> str:
    return str(client.get(f"/v1/nodes/{name}").json()["state"])


def events(client: TestClient, name: str) -> list[dict[str, str]]:
    return list(client.get(f"/v1/nodes/{name}/events").json()["items"])


def test_pages_redirect_to_login_until_signed_in(client: TestClient, web: TestClient,
                                                 admin_token: str) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    for page in PAGES:
        r = web.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next=")
    bad = web.post("/ui/login", data={"token": "mf_wrong"}, headers=ORIGIN)
    assert bad.status_code == 401 and "not known" in bad.text
    assert web.get("/", follow_redirects=False).status_code == 303

    r = web.post("/ui/login", data={"token": admin_token, "next": "//evil.example/"},
                 headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
    for page in PAGES:
        assert web.get(page).status_code == 200, page
    assert "n1" in web.get("/ui/nodes").text

    r = web.post("/ui/logout", headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    assert web.get("/ui/nodes", follow_redirects=False).status_code == 303


def test_cross_site_posts_are_refused(client: TestClient, web: TestClient,
                                      admin_token: str) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    login(web, admin_token)
    before = len(events(client, "n1"))
    for headers in ({}, {"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Referer": "http://evil.example/page"}):
        r = web.post("/ui/nodes/n1/actions/manage", data={"confirmed": "1"}, headers=headers,
                     follow_redirects=False)
        assert r.status_code == 403, headers
        bulk = web.post("/ui/bulk", data={"confirmed": "1", "action": "maintenance-on",
                                          "reason": "x", "node": "n1"}, headers=headers)
        assert bulk.status_code == 403
    assert web.post("/ui/logout", headers={"Origin": "http://evil.example"}).status_code == 403
    assert state(client, "n1") == "enrolled" and len(events(client, "n1")) == before
    # The same page's Referer is accepted when a browser leaves Origin out.
    r = web.post("/ui/nodes/n1/actions/manage", data={"confirmed": "1"},
                 headers={"Referer": "http://testserver/ui/nodes/n1"}, follow_redirects=False)
    assert r.status_code == 303 and state(client, "n1") == "verifying"


def test_action_needs_confirmation_then_moves_node_and_writes_event(
    client: TestClient, web: TestClient, conductor: Conductor, admin_token: str
) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    login(web, admin_token)
    page = web.post("/ui/nodes/n1/actions/manage", data={"next": "/ui/nodes/n1"},
                    headers=ORIGIN)
    assert page.status_code == 200 and 'name="confirmed" value="1"' in page.text
    assert state(client, "n1") == "enrolled"

    flash = act(web, "n1", "manage")
    assert "accepted" in flash["msg"][0]
    last = events(client, "n1")[-1]
    assert (last["kind"], last["from_state"], last["to_state"], last["actor"]) == (
        "transition", "enrolled", "verifying", "token:admin")
    drive(conductor, lambda: state(client, "n1") == "manageable")
    for action, settled in (("inspect", "inspected"), ("provide", "available")):
        act(web, "n1", action)
        drive(conductor, lambda s=settled: state(client, "n1") == s)

    refused = act(web, "n1", "provide")
    assert "cannot provide" in refused["error"][0] and "available" in refused["error"][0]
    missing_image = act(web, "n1", "deploy")
    assert "deploy needs an image" in missing_image["error"][0]
    client.post("/v1/images", json={"name": "ubuntu", "location": "http://images.example/u.raw"})
    act(web, "n1", "deploy", image="ubuntu")
    assert state(client, "n1") == "deploying"
    assert 'id="node-progress"' in web.get("/ui/nodes/n1").text
    drive(conductor, lambda: state(client, "n1") == "active")
    detail = web.get("/ui/nodes/n1").text
    assert 'id="node-state">active<' in detail and "deploy requested (image ubuntu)" in detail


def test_bulk_maintenance_goes_through_the_service(client: TestClient, web: TestClient,
                                                   admin_token: str) -> None:
    for i in (1, 2):
        client.post("/v1/nodes", json=fake_node(f"n{i}", f"52:54:00:00:00:0{i}"))
    login(web, admin_token)
    r = web.post("/ui/bulk", data={"confirmed": "1", "action": "maintenance-on",
                                   "reason": "fan swap", "node": ["n1", "n2"]},
                 headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and "2+of+2" in r.headers["location"]
    for name in ("n1", "n2"):
        node = client.get(f"/v1/nodes/{name}").json()
        assert node["maintenance"] is True and node["maintenance_reason"] == "fan swap"
        assert events(client, name)[-1]["message"] == "maintenance on: fan swap"
    no_reason = web.post("/ui/bulk", data={"confirmed": "1", "action": "maintenance-on",
                                           "node": "n1"}, headers=ORIGIN, follow_redirects=False)
    assert "maintenance+on+needs+a+reason" in no_reason.headers["location"]
    web.post("/ui/bulk", data={"confirmed": "1", "action": "maintenance-off",
                               "node": ["n1", "n2"]}, headers=ORIGIN)
    assert not client.get("/v1/nodes/n2").json()["maintenance"]


def test_member_sees_and_acts_on_its_tenant_only(client: TestClient, web: TestClient) -> None:
    client.post("/v1/tenants", json={"name": "acme"})
    client.post("/v1/tenants", json={"name": "globex"})
    client.post("/v1/nodes", json=fake_node("mine", "52:54:00:00:00:01", tenant="acme"))
    client.post("/v1/nodes", json=fake_node("theirs", "52:54:00:00:00:02", tenant="globex"))
    member = client.post("/v1/tokens", json={"name": "acme-user", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    login(web, member)
    listing = web.get("/ui/nodes").text
    assert "mine" in listing and "theirs" not in listing
    assert 'id="count-total">1<' in web.get("/").text
    tenants = web.get("/ui/tenants").text
    assert "acme" in tenants and "globex" not in tenants and "theirs" not in tenants
    assert web.get("/ui/nodes/theirs").status_code == 404
    flash = act(web, "theirs", "power-on")
    assert "no node named 'theirs'" in flash["error"][0]
    assert client.get("/v1/nodes/theirs").json()["target_power_state"] is None
    assert "may not manage" in act(web, "mine", "manage")["error"][0]
    assert "accepted" in act(web, "mine", "power-on")["msg"][0]
    assert client.get("/v1/nodes/mine").json()["target_power_state"] == "on"


def test_viewer_gets_no_action_buttons(client: TestClient, web: TestClient) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    viewer = client.post("/v1/tokens", json={"name": "watcher", "role": "viewer"}).json()["token"]
    login(web, viewer)
    detail = web.get("/ui/nodes/n1").text
    assert 'id="node-state">enrolled<' in detail and 'id="actions"' not in detail
    assert 'id="bulk"' not in web.get("/ui/nodes").text
    assert "may not manage" in act(web, "n1", "manage")["error"][0]
    assert state(client, "n1") == "enrolled"


def test_rack_view_places_nodes_at_their_units(client: TestClient, web: TestClient,
                                               admin_token: str) -> None:
    client.post("/v1/sites", json={"name": "dc1"})
    client.post("/v1/racks", json={"name": "r1", "site": "dc1", "u_height": 42})
    client.post("/v1/nodes", json=fake_node("big", "52:54:00:00:00:01", rack="r1",
                                            u_position=10, u_size=4))
    client.post("/v1/nodes", json=fake_node("loose", "52:54:00:00:00:02", rack="r1"))
    login(web, admin_token)
    page = web.get("/ui/racks").text
    # U10-U13 of a 42U rack: grid rows count from the top, so row 42 - 13 + 1 = 30, span 4.
    assert 'id="slot-big"' in page and "grid-row: 30 / span 4" in page
    assert 'href="/ui/nodes/big"' in page and "Not placed" in page and "loose" in page


def test_node_list_filters_sorts_and_searches(client: TestClient, web: TestClient,
                                              admin_token: str) -> None:
    for i in (1, 2, 3):
        client.post("/v1/nodes", json=fake_node(f"node-{i}", f"52:54:00:00:00:0{i}"))
    client.post("/v1/nodes/node-2/actions/manage")
    login(web, admin_token)

    def rows(query: str) -> list[str]:
        text = web.get(f"/ui/nodes?{query}").text
        return [line.split('"')[1].removeprefix("row-") for line in text.splitlines()
                if line.startswith('<tr id="row-')]

    assert rows("") == ["node-1", "node-2", "node-3"]
    assert rows("sort=-name") == ["node-3", "node-2", "node-1"]
    assert rows("state=verifying") == ["node-2"]
    assert rows("q=node-3") == ["node-3"]
    assert rows("sort=-state") == ["node-2", "node-1", "node-3"]


def test_enrol_and_allocate_from_the_dashboard(client: TestClient, web: TestClient,
                                               admin_token: str) -> None:
    client.post("/v1/tenants", json={"name": "acme"})
    login(web, admin_token)
    assert 'name="bmc_address"' in web.get("/ui/enroll").text
    form = {"name": "n9", "bmc_driver": "fake", "bmc_address": "fake://n9",
            "bmc_username": "admin", "bmc_password": "pw", "pxe_mac": "52:54:00:00:00:09"}
    bad = web.post("/ui/enroll", data={**form, "bmc_driver": "redfish"}, headers=ORIGIN)
    assert bad.status_code == 422 and "redfish BMC address starts with" in bad.text
    assert 'value="fake://n9"' in bad.text and "pw" not in bad.text.split("<main>")[1]
    r = web.post("/ui/enroll", data=form, headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/nodes/n9?msg=")
    node = client.get("/v1/nodes/n9").json()
    assert node["state"] == "enrolled" and node["ports"][0]["pxe"] is True
    assert events(client, "n9")[-1]["actor"] == "token:admin"
    assert 'id="count-allocated">0<' in web.get("/").text

    r = web.post("/ui/nodes/n9/tenant", data={"tenant": "acme", "confirmed": "1"},
                 headers=ORIGIN, follow_redirects=False)
    assert r.status_code == 303 and "tenant+set+to+acme" in r.headers["location"]
    assert client.get("/v1/nodes/n9").json()["tenant"] == "acme"
    assert "n9" in web.get("/ui/tenants").text
    assert 'id="count-allocated">1<' in web.get("/").text

    member = client.post("/v1/tokens", json={"name": "acme-user", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    login(web, member)
    r = web.post("/ui/nodes/n9/tenant", data={"tenant": "", "confirmed": "1"},
                 headers=ORIGIN, follow_redirects=False)
    assert "admin+or+operator" in r.headers["location"]
    assert client.get("/v1/nodes/n9").json()["tenant"] == "acme"
    denied = web.post("/ui/enroll", data={**form, "name": "n10",
                                          "pxe_mac": "52:54:00:00:00:10"}, headers=ORIGIN)
    assert denied.status_code == 422 and "admin or operator" in denied.text


def test_a_new_flash_replaces_the_old_one(client: TestClient, web: TestClient,
                                          admin_token: str) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    login(web, admin_token)
    r = web.post("/ui/bulk", data={"confirmed": "1", "action": "maintenance-off", "node": "n1",
                                   "next": "/ui/nodes?state=enrolled&msg=old&error=old"},
                 headers=ORIGIN, follow_redirects=False)
    query = parse_qs(urlsplit(r.headers["location"]).query)
    assert query["state"] == ["enrolled"] and query["msg"] != ["old"] and "error" not in query


def test_health_findings_and_tickets_show_on_overview_and_node(
        client: TestClient, web: TestClient, admin_token: str, context: AppContext) -> None:
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    login(web, admin_token)
    assert "No active findings" in web.get("/").text
    with context.db.session() as session:
        node = session.scalars(select(m.Node).where(m.Node.name == "n1")).one()
        session.add(HealthSignal(node_id=node.id, source="agent", check="gpu-xid",
                                 component="GPU3", severity="critical",
                                 message="Xid 79: GPU has fallen off the bus", strikes=2))
        session.add(RepairTicket(node_id=node.id, node_name="n1", component="GPU3",
                                 summary="gpu-xid on GPU3", replacement_node="n9"))
    overview = web.get("/").text
    assert "gpu-xid" in overview and "GPU has fallen off the bus" in overview
    assert 'href="/ui/nodes/n9"' not in overview and "gpu-xid on GPU3" in overview
    detail = web.get("/ui/nodes/n1").text
    assert 'id="health-evidence"' in detail and "seen 2 times" in detail
    assert 'id="repair-ticket"' in detail and 'href="/ui/nodes/n9"' in detail
