"""Agent takeover: someone on the provisioning network who knows a node's MAC tries to pose
as its ramdisk agent, replay its boot secret, forge results, flood lookups, and read what the
anonymous boot endpoints say. Each attempt must be refused and change nothing it does not
own; a replay must fail the step, never let it succeed.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from metalfleet.agent.boot import parse_cmdline
from metalfleet.api.app import create_app
from metalfleet.conductor.agent_channel import DbAgentChannel
from metalfleet.conductor.worker import Conductor
from metalfleet.core.errors import DriverError
from metalfleet.core.states import PowerState
from metalfleet.db import models as m
from metalfleet.db.agent_models import AgentBoot, AgentSession
from metalfleet.db.base import utcnow
from metalfleet.drivers import agent_remote, fake
from metalfleet.drivers.base import HardwareType, NodeContext
from metalfleet.inventory import agent_auth, agents
from metalfleet.runtime import AppContext
from tests.conftest import drive, fake_node

MAC = "52:54:00:5e:c0:01"
NAME = "gpu-secret-name"


def _enrol(client: TestClient, name: str = NAME, mac: str = MAC) -> None:
    r = client.post("/v1/nodes", json=fake_node(name, mac))
    assert r.status_code == 201, r.text


def _set_state(context: AppContext, name: str, state: str) -> str:
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == name))
        assert node is not None
        node.state = state
        return node.id


def _in_step(client: TestClient, context: AppContext, state: str = "cleaning") -> str:
    """The node in a ramdisk step whose boot attempt the conductor has begun."""
    _enrol(client)
    node_id = _set_state(context, NAME, state)
    agent_auth.begin(context.db, node_id, state)
    return node_id


def _secret(script: str) -> str | None:
    kernel = next((line for line in script.splitlines() if line.startswith("kernel ")), "")
    return parse_cmdline(kernel).get("boot_secret")


def _count(context: AppContext, model: Any, *where: Any) -> int:
    with context.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _events(context: AppContext, kind: str) -> int:
    return _count(context, m.Event, m.Event.kind == kind)


def test_lookup_by_macs_alone_is_refused_and_hands_out_nothing(
        client: TestClient, context: AppContext) -> None:
    _in_step(client, context)
    assert _secret(client.get("/v1/boot/ipxe", params={"mac": MAC}).text)  # the node's boot
    events_before = _count(context, m.Event)
    for body in ({"macs": [MAC]}, {"macs": [MAC], "boot_secret": "guessed"},
                 {"macs": [MAC], "boot_secret": ""},
                 {"macs": [MAC], "discover": True}):
        r = client.post("/v1/agent/lookup", json=body)
        if body.get("discover"):  # the discovery ramdisk's lookup: nothing, and no name
            assert r.status_code == 200 and r.json()["token"] is None
            assert r.json()["node"] is None
        else:
            assert r.status_code == 401, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        assert NAME not in r.text and "cleaning" not in r.text
    assert _count(context, AgentSession) == 0  # no token was handed out
    assert _count(context, m.Event) == events_before
    with context.db.session() as session:
        boot = session.get(AgentBoot, session.scalar(select(m.Node.id)))
        assert boot is not None and boot.used_at is None and boot.suspicion is None


def test_a_replayed_lookup_is_refused_recorded_and_fails_the_step(
        client: TestClient, context: AppContext) -> None:
    since = utcnow()
    node_id = _in_step(client, context)
    channel = DbAgentChannel(context.db, node_id, since=since, poll_s=0.05)
    secret = _secret(client.get("/v1/boot/ipxe", params={"mac": MAC}).text)
    body = {"macs": [MAC], "boot_secret": secret}
    first = client.post("/v1/agent/lookup", json=body)
    assert first.status_code == 200 and first.json()["node"] == NAME and first.json()["token"]
    assert channel.wait_for_agent(1) == {}  # the node's agent is in
    replay = client.post("/v1/agent/lookup", json=body)  # the attacker sniffed the secret
    assert replay.status_code == 409 and "hijack" in replay.json()["detail"]
    assert "token" not in replay.json()
    assert _events(context, "security") == 1
    with pytest.raises(DriverError, match="agent hijack suspected"):
        channel.wait_for_agent(1)
    with pytest.raises(DriverError, match="agent hijack suspected"):
        channel.run("wipe", {}, timeout=2)
    again = client.post("/v1/agent/lookup", json=body)
    assert again.status_code == 409
    assert _events(context, "security") == 1  # one event per boot attempt, not per call


class HijackedMachine(fake.FakePower):
    """Power on: the node boots from its iPXE script and its agent looks up; an attacker
    who read the script off the wire replays the lookup straight after."""

    def __init__(self, api_url: str) -> None:
        self.api_url = api_url
        self.answers: list[int] = []

    def set_power_state(self, node: NodeContext, state: PowerState, *,
                        soft: bool = False) -> None:
        super().set_power_state(node, state, soft=soft)
        if state is not PowerState.ON:
            return
        script = httpx.get(f"{self.api_url}/v1/boot/ipxe", params={"mac": node.macs[0]}).text
        body = {"macs": node.macs, "boot_secret": _secret(script)}
        for _ in range(2):  # the node's agent, then the attacker
            self.answers.append(httpx.post(f"{self.api_url}/v1/agent/lookup",
                                           json=body).status_code)

    def reboot(self, node: NodeContext) -> None:
        self.set_power_state(node, PowerState.ON)


@pytest.mark.slow
def test_a_replay_during_a_real_clean_step_lands_the_node_in_clean_failed(
        client: TestClient, context: AppContext, live_server: str) -> None:
    machine = HijackedMachine(live_server)
    hw = HardwareType(name="hijacked", power=machine, boot=fake.FakeBoot(),
                      management=fake.FakeManagement(),
                      inspect=agent_remote.AgentRemoteInspect(),
                      burn_in=agent_remote.AgentRemoteBurnIn(),
                      deploy=agent_remote.AgentRemoteDeploy(),
                      clean=agent_remote.AgentRemoteClean())
    conductor = Conductor(context.db, context.cipher, name="hijack-conductor", workers=2,
                          poll_interval_s=0.05, hardware_types=lambda name: hw,
                          agent_heartbeat_timeout_s=5.0)
    _enrol(client)
    _set_state(context, NAME, "cleaning")

    def state() -> str:
        return str(client.get(f"/v1/nodes/{NAME}").json()["state"])

    drive(conductor, lambda: state() != "cleaning", timeout=30)
    node = client.get(f"/v1/nodes/{NAME}").json()
    assert machine.answers == [200, 409]
    assert node["state"] == "clean-failed"
    assert "agent hijack suspected" in node["last_error"]
    events = client.get(f"/v1/nodes/{NAME}/events").json()["items"]
    assert [e["kind"] for e in events].count("security") == 1


def test_a_result_for_a_command_not_handed_out_is_refused(
        client: TestClient, context: AppContext) -> None:
    node_id = _in_step(client, context)
    secret = _secret(client.get("/v1/boot/ipxe", params={"mac": MAC}).text)
    token = client.post("/v1/agent/lookup",
                        json={"macs": [MAC], "boot_secret": secret}).json()["token"]
    headers = {"X-Agent-Token": token}
    url = f"/v1/agent/heartbeat/{NAME}"
    forged = {"command_id": "f" * 32, "status": "done", "result": {"wiped": True}}
    assert client.post(url, json=forged, headers=headers).status_code == 409  # nothing queued
    with context.db.session() as session:
        queued = agents.queue_command(session, node_id, "wipe", {"mode": "metadata"})
    # The conductor queued a command but no heartbeat has handed it out: even with its id
    # (read from the database here) a result is refused.
    early = {"command_id": queued, "status": "done", "result": {}}
    r = client.post(url, json=early, headers=headers)
    assert r.status_code == 409 and "not recorded" in r.json()["detail"]
    assert client.post(url, json=forged, headers=headers).status_code == 409
    with context.db.session() as session:
        command = session.get(AgentSession, node_id).command  # type: ignore[union-attr]
        assert command["status"] == "pending" and "result" not in command
    # Handed out, run and finished: a different outcome afterwards is refused too.
    handed = client.post(url, json={}, headers=headers).json()["command"]
    assert handed["id"] == queued
    done = {"command_id": queued, "status": "done", "result": {"ok": True}}
    assert client.post(url, json=done, headers=headers).status_code == 200
    assert client.post(url, json=done, headers=headers).status_code == 200  # a resend
    flipped = {"command_id": queued, "status": "failed", "error": "changed my mind"}
    assert client.post(url, json=flipped, headers=headers).status_code == 409
    with context.db.session() as session:
        command = session.get(AgentSession, node_id).command  # type: ignore[union-attr]
        assert command["status"] == "done" and command["result"] == {"ok": True}


def test_a_lookup_with_too_many_macs_is_refused(client: TestClient,
                                                context: AppContext) -> None:
    macs = [f"52:54:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(65)]
    for discover in (False, True):
        r = client.post("/v1/agent/lookup", json={"macs": macs, "discover": discover})
        assert r.status_code == 422 and "macs" in r.text
    assert _count(context, m.Node) == 0 and _count(context, m.Event) == 0
    ok = client.post("/v1/agent/lookup", json={"macs": macs[:64], "discover": True})
    assert ok.status_code == 200


def test_a_flood_from_one_address_is_rate_limited_across_api_processes(
        client: TestClient, context: AppContext) -> None:
    context.settings.agent_lookups_per_minute = 5
    with TestClient(create_app(context)) as second:  # another API process, same database
        answers = []
        for i in range(12):
            api = client if i % 2 else second
            body = {"macs": [f"52:54:00:f1:00:{i:02x}"], "discover": True}
            answers.append(api.post("/v1/agent/lookup", json=body))
    assert [r.status_code for r in answers] == [200] * 5 + [429] * 7
    refused = answers[-1]
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    # Only the five allowed lookups left rows (a node and its event each), and plain
    # lookups share the budget.
    assert _count(context, m.Node) == 5 and _events(context, "discovered") == 5
    assert client.post("/v1/agent/lookup", json={"macs": [MAC]}).status_code == 429


def test_ipxe_answers_name_nothing_and_write_at_most_one_event_per_boot(
        client: TestClient, context: AppContext) -> None:
    _enrol(client)
    before = _count(context, m.Event)
    for _ in range(5):  # not in a step: boots its disk, no rows
        script = client.get("/v1/boot/ipxe", params={"mac": MAC}).text
        assert "sanboot" in script and NAME not in script and "enrolled" not in script
    unknown = client.get("/v1/boot/ipxe", params={"mac": "52:54:00:5e:c0:99"}).text
    assert "metalfleet.mode=discover" in unknown
    assert _count(context, m.Event) == before

    since = utcnow()
    node_id = _set_state(context, NAME, "deploying")
    agent_auth.begin(context.db, node_id, "deploying")
    scripts = [client.get("/v1/boot/ipxe", params={"mac": MAC}).text for _ in range(6)]
    for script in scripts:
        assert NAME not in script and "deploying" not in script
        assert "metalfleet.node=" not in script
    secrets = [_secret(script) for script in scripts]
    assert secrets[0] and secrets[1:] == [None] * 5  # handed out once per boot attempt
    assert _events(context, "boot") == 1 and _events(context, "security") == 1
    assert _count(context, m.Event) == before + 2
    # Someone else fetched the node's script in this attempt: the step fails.
    with pytest.raises(DriverError, match="agent hijack suspected"):
        DbAgentChannel(context.db, node_id, since=since, poll_s=0.05).wait_for_agent(1)
