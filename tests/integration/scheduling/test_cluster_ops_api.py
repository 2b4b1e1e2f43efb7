"""Configure, push, drain/resume and power over the API (SQLite and PostgreSQL), with fake
scontrol/kubectl that record what they were asked; test_slurm_push_real.py does it for real."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.integration.scheduling.fakebin import FakeBin
from tests.integration.scheduling.fleet import GPU_CLASS, build


def cluster(client: TestClient, name: str, scheduler: str, count: int = 2) -> None:
    r = client.post("/v1/clusters", json={"name": name, "scheduler": scheduler, "count": count,
                                          "node_class": GPU_CLASS, "tenant": "acme"})
    assert r.status_code == 201, r.text


def token(client: TestClient, name: str, role: str, tenant: str | None = None) -> dict[str, str]:
    body = {"name": name, "role": role, **({"tenant": tenant} if tenant else {})}
    secret = client.post("/v1/tokens", json=body).json()["token"]
    return {"Authorization": f"Bearer {secret}"}


def test_configure_validates_replaces_and_hides_secrets(
    client: TestClient, context: AppContext, tmp_path: Path,
) -> None:
    build(client, context, racks=[2, 2])
    cluster(client, "hpc", "slurm")
    cluster(client, "k8s", "kubernetes")
    fake = FakeBin(tmp_path / "bin")
    conf = {"scheduler_config": {"slurm": fake.slurm(tmp_path / "etc" / "slurm.conf")}}
    r = client.patch("/v1/clusters/hpc", json=conf)
    assert r.status_code == 200, r.text
    assert r.json()["scheduler_config"]["slurm"]["conf"] == str(tmp_path / "etc/slurm.conf")

    r = client.patch("/v1/clusters/k8s", json={"scheduler_config": {
        "kubernetes": fake.kubernetes()}})
    assert r.status_code == 200
    assert "s3cret-k8s" not in r.text and "***" in r.text
    with context.db.session() as session:
        stored = session.scalar(select(m.Cluster).where(m.Cluster.name == "k8s"))
        assert stored is not None and "s3cret-k8s" in stored.scheduler_config["kubernetes"][
            "kubectl"]

    # A merge patch: changing one setting keeps the secret the client only saw as ***.
    r = client.patch("/v1/clusters/k8s", json={"scheduler_config": {"kubernetes": {
        "timeout_s": 30}}})
    assert r.status_code == 200 and r.json()["scheduler_config"]["kubernetes"]["timeout_s"] == 30
    with context.db.session() as session:
        stored = session.scalar(select(m.Cluster).where(m.Cluster.name == "k8s"))
        assert stored is not None and "s3cret-k8s" in stored.scheduler_config["kubernetes"][
            "kubectl"]
    r = client.patch("/v1/clusters/k8s", json={"scheduler_config": {"kubernetes": None}})
    assert r.status_code == 200 and r.json()["scheduler_config"] == {}

    r = client.patch("/v1/clusters/k8s", json=conf)
    assert r.status_code == 422 and "set scheduler_config.kubernetes" in r.json()["detail"]
    r = client.patch("/v1/clusters/hpc", json={"scheduler_config": {"slurm": {"conf": "rel"}}})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert "scheduler_config.slurm.conf" in r.json()["detail"]
    r = client.patch("/v1/clusters/hpc", json={"scheduler_config": {"slurm": {"site": {
        "controler": "typo"}}}})
    assert r.status_code == 422 and "slurm.site.controler" in r.json()["detail"]
    operator = token(client, "op", "operator")
    assert client.patch("/v1/clusters/hpc", json=conf, headers=operator).status_code == 403
    assert client.get("/v1/clusters/hpc").json()["scheduler_config"]["slurm"]["timeout_s"] == 5


def test_push_writes_changed_files_and_reconfigures_only_when_needed(
    client: TestClient, context: AppContext, tmp_path: Path,
) -> None:
    build(client, context, racks=[2, 3])  # best fit: rack 1
    cluster(client, "hpc", "slurm")
    r = client.post("/v1/clusters/hpc/push")
    assert r.status_code == 422 and "metalfleet cluster configure hpc" in r.json()["detail"]
    fake = FakeBin(tmp_path / "bin")
    etc = tmp_path / "etc"
    settings = fake.slurm(etc / "slurm.conf", qos={"priority": 5, "grp_tres": "gres/gpu=16"},
                          power_saving={"api_url": "http://mf:8080",
                                        "token_file": "/etc/slurm/mf.token"})
    client.patch("/v1/clusters/hpc", json={"scheduler_config": {"slurm": settings}})

    first = client.post("/v1/clusters/hpc/push").json()
    assert first["files"] == {name: "added" for name in (
        "gres.conf", "metalfleet-resume", "metalfleet-suspend", "sacctmgr.sh", "slurm.conf",
        "topology.conf")}
    assert first["reconfigured"] is False and "first push" in first["output"]
    assert (etc / "metalfleet-suspend").stat().st_mode & 0o111
    assert f"SuspendProgram={etc / 'metalfleet-suspend'}" in (etc / "slurm.conf").read_text()
    assert "modify qos where name=acme set Priority=5 GrpTRES=gres/gpu=16" in (
        etc / "sacctmgr.sh").read_text()

    again = client.post("/v1/clusters/hpc/push").json()
    assert set(again["files"].values()) == {"unchanged"} and again["reconfigured"] is False
    assert fake.calls() == []

    client.patch("/v1/clusters/hpc", json={"scheduler_config": {"slurm": {
        **settings, "max_time": "1-00:00:00"}}})
    changed = client.post("/v1/clusters/hpc/push").json()
    assert changed["files"]["slurm.conf"] == "changed" and changed["reconfigured"] is True
    assert changed["files"]["gres.conf"] == "unchanged"
    assert fake.calls() == ["scontrol reconfigure"]

    # A node joining: the files change, but Slurm 22.05 must restart, not reconfigure.
    with context.db.session() as session:
        hpc = session.scalar(select(m.Cluster).where(m.Cluster.name == "hpc"))
        node = session.scalar(select(m.Node).where(m.Node.name == "gpu-r2-01"))
        assert hpc is not None and node is not None
        hpc.members.append(m.ClusterNode(node=node, node_id=node.id, node_name=node.name))
    grown = client.post("/v1/clusters/hpc/push").json()
    assert grown["nodes_added"] == ["gpu-r2-01"] and grown["restart_required"] is True
    assert grown["reconfigured"] is False and fake.calls() == ["scontrol reconfigure"]

    fake.fail()
    client.patch("/v1/clusters/hpc", json={"scheduler_config": {"slurm": {
        **settings, "max_time": "2-00:00:00"}}})
    r = client.post("/v1/clusters/hpc/push")
    assert r.status_code == 502 and "connection refused" in r.json()["detail"]


def test_drain_and_resume_through_the_hooks(
    client: TestClient, context: AppContext, tmp_path: Path,
) -> None:
    build(client, context, racks=[2, 2])
    cluster(client, "hpc", "slurm")
    cluster(client, "k8s", "kubernetes")
    fake = FakeBin(tmp_path / "bin")
    client.patch("/v1/clusters/hpc", json={"scheduler_config": {
        "slurm": fake.slurm(tmp_path / "slurm.conf")}})
    client.patch("/v1/clusters/k8s", json={"scheduler_config": {
        "kubernetes": fake.kubernetes()}})
    hpc = [n["name"] for n in client.get("/v1/clusters/hpc").json()["nodes"]]
    k8s = [n["name"] for n in client.get("/v1/clusters/k8s").json()["nodes"]]

    # One line for Slurm: the reason's line breaks and runs of spaces become single spaces.
    r = client.post(f"/v1/clusters/hpc/nodes/{hpc[0]}/drain",
                    json={"reason": "xid 79\n  on GPU 3"})
    assert r.status_code == 200 and r.json()["scheduler"] == "slurm"
    r = client.post(f"/v1/clusters/hpc/nodes/{hpc[0]}/resume")
    assert r.status_code == 200
    r = client.post(f"/v1/clusters/k8s/nodes/{k8s[0]}/drain", json={"reason": "ecc"})
    assert r.status_code == 200 and r.json()["scheduler"] == "kubernetes"
    client.post(f"/v1/clusters/k8s/nodes/{k8s[0]}/resume")
    kube = "kubectl --kubeconfig /k --token s3cret-k8s"
    assert fake.calls() == [
        f"scontrol update NodeName={hpc[0]} State=DRAIN Reason=xid 79 on GPU 3",
        f"scontrol update NodeName={hpc[0]} State=RESUME",
        f"{kube} cordon {k8s[0]}",
        f"{kube} drain {k8s[0]} --ignore-daemonsets --delete-emptydir-data --timeout=300s",
        f"{kube} uncordon {k8s[0]}",
    ]
    pushed = client.post("/v1/clusters/k8s/push").json()
    assert pushed["files"]["nodes.yaml"] == "applied"
    assert any(c.startswith(f"{kube} apply -f ") for c in fake.calls())

    assert client.post(f"/v1/clusters/hpc/nodes/{k8s[0]}/drain",
                       json={"reason": "x"}).status_code == 404
    assert client.post(f"/v1/clusters/hpc/nodes/{hpc[0]}/drain",
                       json={"reason": ""}).status_code == 422
    fake.fail()
    r = client.post(f"/v1/clusters/k8s/nodes/{k8s[1]}/drain", json={"reason": "ecc"})
    assert r.status_code == 502 and "connection refused" in r.json()["detail"]
    assert "s3cret-k8s" not in r.text
    events = client.get(f"/v1/nodes/{k8s[1]}/events").json()["items"]
    assert any(e["kind"] == "scheduler" and "failed" in e["message"] for e in events)
    other = token(client, "beta-m", "member", "beta")
    assert client.post(f"/v1/clusters/hpc/nodes/{hpc[0]}/resume",
                       headers=other).status_code == 404


def test_power_sets_target_state_for_the_clusters_nodes_only(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[3])
    cluster(client, "hpc", "slurm", count=2)
    r = client.post("/v1/clusters/hpc/power", json={"action": "suspend",
                                                    "nodes": "gpu-r1-[01-02]"})
    assert r.status_code == 202, r.text
    assert [(n["name"], n["target_power_state"]) for n in r.json()["nodes"]] == [
        ("gpu-r1-01", "off"), ("gpu-r1-02", "off")]
    assert client.get("/v1/nodes/gpu-r1-01").json()["target_power_state"] == "off"
    r = client.post("/v1/clusters/hpc/power", json={"action": "resume",
                                                    "nodes": "gpu-r1-[02-03]"})
    assert r.status_code == 422 and "gpu-r1-03 not in cluster 'hpc'" in r.json()["detail"]
    assert client.get("/v1/nodes/gpu-r1-02").json()["target_power_state"] == "off"
    member = token(client, "acme-m", "member", "acme")
    r = client.post("/v1/clusters/hpc/power", headers=member,
                    json={"action": "resume", "nodes": "gpu-r1-01"})
    assert r.status_code == 202 and r.json()["nodes"][0]["target_power_state"] == "on"
    viewer = token(client, "v", "viewer")
    assert client.post("/v1/clusters/hpc/power", headers=viewer,
                       json={"action": "resume", "nodes": "gpu-r1-01"}).status_code == 403
    cluster(client, "raw", "none", count=1)
    r = client.post("/v1/clusters/raw/nodes/gpu-r1-03/drain", json={"reason": "x"})
    assert r.status_code == 422 and "no scheduler" in r.json()["detail"]
    assert client.post("/v1/clusters/raw/push").status_code == 422
