"""Clusters over the API on SQLite and PostgreSQL: placement, quotas, tenants, release."""

from __future__ import annotations

from fastapi.testclient import TestClient

from metalfleet.runtime import AppContext
from tests.integration.scheduling.fleet import GPU_CLASS, build


def create(client: TestClient, name: str, count: int, **extra: object) -> dict[str, object]:
    body = {"name": name, "scheduler": "slurm", "node_class": GPU_CLASS, "count": count,
            "tenant": "acme", **extra}
    response = client.post("/v1/clusters", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def test_create_picks_the_best_fitting_leaf_and_hands_nodes_to_the_tenant(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[3, 5])
    cluster = create(client, "train", 3)
    assert cluster["leaves"] == ["ib-leaf-1"] and cluster["racks"] == ["rack-1"]
    assert cluster["tenant"] == "acme" and cluster["count"] == 3
    node = client.get("/v1/nodes/gpu-r1-01").json()
    assert node["tenant"] == "acme" and node["labels"]["metalfleet.io/cluster"] == "train"
    assert node["state"] == "available"
    events = client.get("/v1/nodes/gpu-r1-01/events").json()["items"]
    assert any(e["kind"] == "allocation" and "train" in e["message"] for e in events)
    # 4 more: leaf 2 holds 5, and a gang of 4 fits it whole.
    second = create(client, "second", 4)
    assert second["leaves"] == ["ib-leaf-2"]
    listed = client.get("/v1/clusters").json()["items"]
    assert [c["name"] for c in listed] == ["second", "train"]


def test_not_enough_nodes_is_409_saying_how_many_are_free(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[2, 2])
    r = client.post("/v1/clusters", json={"name": "big", "node_class": GPU_CLASS, "count": 9})
    assert r.status_code == 409
    problem = r.json()
    assert problem["free"] == 4 and "4 free" in problem["detail"]
    r = client.post("/v1/clusters", json={"name": "leafy", "node_class": GPU_CLASS, "count": 3,
                                          "constraints": {"same_leaf": True}})
    assert r.status_code == 409 and "most on one leaf is 2" in r.json()["detail"]
    r = client.post("/v1/clusters", json={"name": "x", "node_class": "nope", "count": 1})
    assert r.status_code == 422 and "unknown node_class 'nope'" in r.json()["detail"]


def test_quota_per_tenant_and_class(client: TestClient, context: AppContext) -> None:
    build(client, context, racks=[4, 4])
    r = client.put(f"/v1/quotas/acme/{GPU_CLASS}", json={"max_nodes": 5})
    assert r.status_code == 200 and r.json() == {"tenant": "acme", "node_class": GPU_CLASS,
                                                 "max_nodes": 5, "used": 0}
    create(client, "a1", 4)
    r = client.post("/v1/clusters", json={"name": "a2", "node_class": GPU_CLASS, "count": 2,
                                          "tenant": "acme"})
    assert r.status_code == 409 and r.json()["title"] == "Quota exceeded"
    assert "at most 1 more" in r.json()["detail"]
    create(client, "a2", 1)
    assert client.get("/v1/quotas").json()[0]["used"] == 5
    # Another tenant is not limited by acme's quota.
    assert client.post("/v1/clusters", json={"name": "b1", "node_class": GPU_CLASS, "count": 3,
                                             "tenant": "beta"}).status_code == 201


def test_delete_releases_nodes_where_they_are(client: TestClient, context: AppContext) -> None:
    build(client, context, racks=[2, 2])
    create(client, "c1", 4, constraints={"spread_racks": True})
    assert client.delete("/v1/clusters/c1").status_code == 204
    assert client.get("/v1/clusters/c1").status_code == 404
    node = client.get("/v1/nodes/gpu-r2-02").json()
    assert node["tenant"] is None and "metalfleet.io/cluster" not in node["labels"]
    assert node["state"] == "available"
    create(client, "c2", 4)  # the nodes are free again


def test_members_see_and_create_only_their_tenants_clusters(
    client: TestClient, context: AppContext,
) -> None:
    build(client, context, racks=[2, 2])
    create(client, "acme-c", 2)
    secret = client.post("/v1/tokens", json={"name": "beta-m", "role": "member",
                                             "tenant": "beta"}).json()["token"]
    member = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/clusters", headers=member).json()["items"] == []
    assert client.get("/v1/clusters/acme-c", headers=member).status_code == 404
    r = client.post("/v1/clusters", headers=member,
                    json={"name": "mine", "node_class": GPU_CLASS, "count": 2})
    assert r.status_code == 201 and r.json()["tenant"] == "beta"
    r = client.post("/v1/clusters", headers=member,
                    json={"name": "theirs", "node_class": GPU_CLASS, "count": 1,
                          "tenant": "acme"})
    assert r.status_code == 403
    assert client.put(f"/v1/quotas/beta/{GPU_CLASS}", headers=member,
                      json={"max_nodes": 99}).status_code == 403


def test_render_files_of_a_slurm_cluster(client: TestClient, context: AppContext) -> None:
    build(client, context, racks=[2, 3])
    create(client, "hpc", 5)
    files = client.get("/v1/clusters/hpc/files").json()
    assert set(files) == {"slurm.conf", "gres.conf", "topology.conf"}
    assert ("NodeName=gpu-r1-01 CPUs=224 Sockets=2 CoresPerSocket=56 ThreadsPerCore=2 "
            "RealMemory=2063879 Gres=gpu:8 Feature=gpu-h100-8x,rack-1 State=UNKNOWN"
            ) in files["slurm.conf"].splitlines()
    assert "PartitionName=hpc Nodes=gpu-r1-[01-02],gpu-r2-[01-03] Default=YES" in (
        files["slurm.conf"])
    assert "NodeName=gpu-r2-03 AutoDetect=nvml Name=gpu File=/dev/nvidia[0-7]" in (
        files["gres.conf"].splitlines())
    assert files["topology.conf"].splitlines()[2:] == [
        "SwitchName=ib-leaf-1 Nodes=gpu-r1-[01-02]",
        "SwitchName=ib-leaf-2 Nodes=gpu-r2-[01-03]",
        "SwitchName=ib-spine Switches=ib-leaf-1,ib-leaf-2",
    ]
