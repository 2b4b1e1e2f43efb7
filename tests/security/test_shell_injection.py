"""Attacker tests: no string a tenant, a node or an alert sends runs on the Slurm controller.

ssh joins its arguments into one line that the remote shell parses again; the prefix
``sh -c 'eval "$*"' sh`` does exactly that locally, so it stands in for ``ssh head``. A
recording ``scontrol`` on PATH writes its argv (NUL-separated) to a file: a hostile string
must arrive there as one literal argument and never execute (no PWNED file).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from metalfleet.core import safe_text
from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from metalfleet.scheduling import hooks
from metalfleet.scheduling.slurm import control as slurm
from tests.integration.scheduling.fleet import GPU_CLASS, build

EVAL_PREFIX = ("sh", "-c", 'eval "$*"', "sh")


def hostile(pwned: Path) -> list[str]:
    return [
        f"x; touch {pwned}",
        f"$(touch {pwned})",
        f"`touch {pwned}`",
        f"x\nrm -rf ~; touch {pwned}",
        f"it's'; touch {pwned}; '",
        f'say "hi"; touch {pwned}',
        f"a && touch {pwned} | cat > {pwned}",
    ]


class Recorder:
    """A stand-in scontrol that records each call's argv; PATH finds it first."""

    def __init__(self, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "argv"
        self.pwned = directory / "PWNED"
        for tool in ("scontrol", "kubectl"):
            script = directory / tool
            script.write_text("#!/bin/sh\n"
                              f"for a in \"$@\"; do printf '%s\\0' \"$a\"; done >> {self.log}\n"
                              f"printf '\\n' >> {self.log}\n")
            script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{directory}:/usr/bin:/bin")

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [line.split("\0") for line in self.log.read_text().split("\0\n") if line]


@pytest.fixture
def rec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorder:
    return Recorder(tmp_path / "bin", monkeypatch)


def eval_control(remote_shell: bool | None = True) -> slurm.SlurmControl:
    return slurm.SlurmControl(prefix=EVAL_PREFIX, timeout_s=5, remote_shell=remote_shell)


def test_the_eval_prefix_really_executes_unquoted_text(rec: Recorder) -> None:
    """The stand-in is a real attack surface: unquoted (remote_shell false), it runs."""
    eval_control(remote_shell=False).run("scontrol", "update", f"Reason=x; touch {rec.pwned}")
    assert rec.pwned.exists()


@pytest.mark.parametrize("index", range(7))
def test_quoted_arguments_reach_scontrol_literally(rec: Recorder, index: int) -> None:
    reason = hostile(rec.pwned)[index]
    eval_control().run("scontrol", "update", "NodeName=n1", "State=DRAIN", f"Reason={reason}")
    assert rec.calls() == [["update", "NodeName=n1", "State=DRAIN", f"Reason={reason}"]]
    assert not rec.pwned.exists()


def test_remote_shell_defaults_to_ssh_prefixes() -> None:
    assert slurm.is_remote_shell(["ssh", "head"], None)
    assert slurm.is_remote_shell(["/usr/bin/ssh", "-p", "22", "head"], None)
    assert not slurm.is_remote_shell(["nsenter", "--net=/run/netns/x"], None)
    assert not slurm.is_remote_shell([], None)
    assert slurm.is_remote_shell(["env"], True) and not slurm.is_remote_shell(["ssh"], False)
    assert slurm.shell_args(["ssh", "h"], None, ("a b", "$(id)")) == ["'a b'", "'$(id)'"]


def test_slurm_drain_sanitizes_and_refuses_bad_names(rec: Recorder) -> None:
    for reason in hostile(rec.pwned):
        slurm.drain("n1", reason, eval_control())
    for call in rec.calls():
        assert call[:3] == ["update", "NodeName=n1", "State=DRAIN"]
        assert not set(call[3]) & set(";$`'\"\n&|<>()")
    assert not rec.pwned.exists()
    before = len(rec.calls())
    with pytest.raises(slurm.SlurmError, match="refusing"):
        slurm.drain(f"n1;touch {rec.pwned}", "ok", eval_control())
    assert len(rec.calls()) == before


def test_kubectl_through_a_remote_shell_is_quoted(rec: Recorder) -> None:
    cluster = m.Cluster(name="k8s", scheduler="kubernetes", scheduler_config={"kubernetes": {
        "kubectl": [*EVAL_PREFIX, "kubectl"], "remote_shell": True}})
    hooks.kubectl(cluster, "label", "node", "n1", f"note=$(touch {rec.pwned})")
    assert rec.calls() == [["label", "node", "n1", f"note=$(touch {rec.pwned})"]]
    assert not rec.pwned.exists()


# --- through the API and the database -------------------------------------------------


def slurm_cluster(client: TestClient, context: AppContext, tmp_path: Path) -> list[str]:
    build(client, context, racks=[2])
    r = client.post("/v1/clusters", json={"name": "hpc", "scheduler": "slurm", "count": 2,
                                          "node_class": GPU_CLASS, "tenant": "acme"})
    assert r.status_code == 201, r.text
    r = client.patch("/v1/clusters/hpc", json={"scheduler_config": {"slurm": {
        "conf": str(tmp_path / "etc" / "slurm.conf"), "prefix": list(EVAL_PREFIX),
        "remote_shell": True, "timeout_s": 5}}})
    assert r.status_code == 200, r.text
    return [n["name"] for n in client.get("/v1/clusters/hpc").json()["nodes"]]


def member(client: TestClient) -> dict[str, str]:
    secret = client.post("/v1/tokens", json={"name": "tenant-user", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    return {"Authorization": f"Bearer {secret}"}


def test_api_refuses_hostile_reasons_and_runs_nothing(
    client: TestClient, context: AppContext, tmp_path: Path, rec: Recorder,
) -> None:
    nodes = slurm_cluster(client, context, tmp_path)
    headers = member(client)
    for reason in hostile(rec.pwned):
        r = client.post(f"/v1/clusters/hpc/nodes/{nodes[0]}/drain", json={"reason": reason},
                        headers=headers)
        assert r.status_code == 422, (reason, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "reason" in r.json()["detail"] and "letters, digits" in r.json()["detail"]
        # Maintenance reasons end up in Slurm drain reasons too.
        r = client.post(f"/v1/nodes/{nodes[0]}/actions/maintenance-on",
                        json={"reason": reason})
        assert r.status_code == 422, (reason, r.text)
    assert rec.calls() == [] and not rec.pwned.exists()
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == nodes[0]))
        assert node is not None and not node.maintenance
        assert session.scalar(select(m.Event.id).where(m.Event.kind == "scheduler")) is None
    # A safe reason goes through, as one literal argument.
    r = client.post(f"/v1/clusters/hpc/nodes/{nodes[0]}/drain",
                    json={"reason": "xid 79 on GPU3"}, headers=headers)
    assert r.status_code == 200, r.text
    assert rec.calls() == [["update", f"NodeName={nodes[0]}", "State=DRAIN",
                            "Reason=xid 79 on GPU3"]]
    # Resume takes no text from the caller; it runs the fixed command only.
    assert client.post(f"/v1/clusters/hpc/nodes/{nodes[0]}/resume",
                       headers=headers).status_code == 200
    assert rec.calls()[-1] == ["update", f"NodeName={nodes[0]}", "State=RESUME"]


def test_health_reports_with_hostile_components_are_refused(
    client: TestClient, context: AppContext, tmp_path: Path, rec: Recorder,
) -> None:
    nodes = slurm_cluster(client, context, tmp_path)
    for bad in hostile(rec.pwned):
        for finding in ({"check": "gpu-xid", "component": bad, "severity": "critical"},
                        {"check": bad, "component": "GPU3", "severity": "critical"}):
            r = client.post(f"/v1/nodes/{nodes[0]}/health-reports",
                            json={"source": "operator", "findings": [finding]})
            assert r.status_code == 422, r.text
            assert "findings.0." in r.json()["detail"]
    assert rec.calls() == [] and not rec.pwned.exists()
    assert client.get(f"/v1/nodes/{nodes[0]}/health").json()["signals"] == []
    # A real BMC sensor name keeps its space: it reaches scontrol inside one argument.
    finding = {"check": "fan", "component": "System  Fan 3", "severity": "critical"}
    r = client.post(f"/v1/nodes/{nodes[0]}/health-reports",
                    json={"source": "operator", "findings": [finding]})
    assert r.status_code == 200, r.text
    signals = client.get(f"/v1/nodes/{nodes[0]}/health").json()["signals"]
    assert [(s["check"], s["component"]) for s in signals] == [("fan", "System Fan 3")]
    drains = [c for c in rec.calls() if "State=DRAIN" in c]
    assert len(drains) == 1 and drains[0][1] == f"NodeName={nodes[0]}"
    assert drains[0][3].startswith("Reason=") and "fan on System Fan 3" in drains[0][3]
    assert not rec.pwned.exists()


def test_hook_path_with_hostile_database_values_stays_literal(
    client: TestClient, context: AppContext, tmp_path: Path, rec: Recorder,
) -> None:
    """Values already in the database (older rows, another writer) are not trusted either."""
    nodes = slurm_cluster(client, context, tmp_path)
    bad = hostile(rec.pwned)
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == nodes[0]))
        assert node is not None
        for reason in bad:
            outcome = hooks.drain(session, node, f"health: gpu-xid on {reason}", actor="t")
            assert outcome is not None and outcome.ok, outcome
        session.commit()
    calls = rec.calls()
    assert len(calls) == len(bad)
    for call in calls:
        assert call[:3] == ["update", f"NodeName={nodes[0]}", "State=DRAIN"]
        assert call[3].startswith("Reason=health: gpu-xid on ")
        assert not set(call[3]) & set(";$`'\"\n&|<>()")
    assert not rec.pwned.exists()
    # A node name that is not a name is refused before any command is built.
    with context.db.session() as session:
        session.execute(update(m.Node).where(m.Node.name == nodes[1])
                        .values(name="x;touch ${HOME}/PWNED"))
        node = session.scalar(select(m.Node).where(m.Node.name.like("x;touch%")))
        assert node is not None
        outcome = hooks.resume(session, node, actor="t")
        assert outcome is not None and not outcome.ok and "refusing" in outcome.detail
        session.rollback()
    assert len(rec.calls()) == len(bad) and not rec.pwned.exists()


def test_alert_labels_cannot_inject(
    client: TestClient, context: AppContext, tmp_path: Path, rec: Recorder,
) -> None:
    nodes = slurm_cluster(client, context, tmp_path)
    pwned = rec.pwned
    payload = {"alerts": [
        {"status": "firing", "labels": {"node": f"{nodes[0]}; touch {pwned}",
                                        "alertname": "GpuDown", "severity": "critical"}},
        {"status": "firing", "labels": {"node": "no-such-node", "alertname": "GpuDown"}},
        {"status": "firing", "labels": {"node": nodes[0], "severity": "critical",
                                        "alertname": f"Gpu$(touch {pwned})",
                                        "gpu": f"0`touch {pwned}`"},
         "annotations": {"summary": f"'; touch {pwned}; '"}},
    ]}
    r = client.post("/v1/observability/alertmanager/webhook", json=payload)
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["recorded"] == 1 and result["unknown_nodes"] == 2
    assert result["unknown_node_names"] == ["no-such-node"]  # the hostile one is not echoed
    assert not pwned.exists()
    # The critical alert drained the node, with the labels reduced to safe text.
    calls = [c for c in rec.calls() if "State=DRAIN" in c]
    assert len(calls) == 1 and calls[0][1] == f"NodeName={nodes[0]}"
    assert not set(calls[0][3]) & set(";$`'\"\n&|<>()")
    signals = client.get(f"/v1/nodes/{nodes[0]}/health").json()["signals"]
    assert [(s["check"], s["component"]) for s in signals] == [
        (safe_text.sanitize_token(f"Gpu$(touch {pwned})", safe_text.CHECK_MAX),
         safe_text.sanitize_component(f"0`touch {pwned}`"))]
    # Resolving the same alert clears the signal stored under the sanitized key.
    payload["alerts"][2]["status"] = "resolved"
    assert client.post("/v1/observability/alertmanager/webhook",
                       json={"alerts": [payload["alerts"][2]]}).status_code == 200
    assert [s["status"] for s in client.get(f"/v1/nodes/{nodes[0]}/health").json()["signals"]
            if s["status"] == "active"] == []
