"""A small GPU fleet with an InfiniBand fabric, built through the API, nodes made available."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import update

from metalfleet.db import models as m
from metalfleet.runtime import AppContext
from tests.conftest import fake_node

GPU_CLASS = "gpu-h100-8x"


def gpu_inventory(gpus: int = 8, sockets: int = 2, cores: int = 112,
                  memory_mib: int = 2_063_879) -> dict[str, Any]:
    return {
        "cpu": {"model": "Intel(R) Xeon(R) Platinum 8480+", "sockets": sockets, "cores": cores,
                "threads": cores * 2, "arch": "x86_64", "flags": []},
        "memory": {"total_mib": memory_mib},
        "gpus": [{"index": i, "name": "NVIDIA H100 80GB HBM3", "uuid": f"GPU-{i}",
                  "memory_mib": 81559, "pci_bus_id": f"0000:{0x18 + i:02x}:00.0",
                  "nvlink": True} for i in range(gpus)],
        "gpu_driver": {"driver_version": "550.90.07", "cuda_version": "12.4"},
        "infiniband": [{"device": "mlx5_0", "port": 1, "state": "ACTIVE", "rate_gbps": 400.0,
                        "link_layer": "InfiniBand"}],
    }


def post(client: TestClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def build(client: TestClient, context: AppContext, racks: list[int],
          inventory: dict[str, Any] | None = None) -> list[str]:
    """``racks[i]`` GPU nodes in rack i, each on rack i's IB leaf; every leaf up to one spine."""
    post(client, "/v1/sites", {"name": "s1"})
    post(client, "/v1/switches", {"name": "ib-spine", "role": "spine", "fabric": "infiniband"})
    post(client, "/v1/node-classes", {"name": GPU_CLASS, "cpu_cores": 112, "memory_gib": 2048,
                                      "gpu_count": 8, "gpu_model": "NVIDIA H100 80GB HBM3"})
    for tenant in ("acme", "beta"):
        post(client, "/v1/tenants", {"name": tenant})
    names = []
    for r, count in enumerate(racks, start=1):
        post(client, "/v1/racks", {"name": f"rack-{r}", "site": "s1"})
        post(client, "/v1/switches", {"name": f"ib-leaf-{r}", "rack": f"rack-{r}",
                                      "role": "leaf", "fabric": "infiniband"})
        post(client, "/v1/switches", {"name": f"eth-leaf-{r}", "rack": f"rack-{r}",
                                      "role": "leaf", "fabric": "ethernet"})
        post(client, "/v1/switch-links", {"name": f"ib-leaf-{r}-up", "switch": f"ib-leaf-{r}",
                                          "port": "p64", "peer_switch": "ib-spine",
                                          "peer_port": f"p{r}"})
        for i in range(1, count + 1):
            name = f"gpu-r{r}-{i:02d}"
            body = fake_node(name, f"52:54:00:00:{r:02x}:{i:02x}", rack=f"rack-{r}",
                             node_class=GPU_CLASS)
            body["ports"][0].update(switch=f"eth-leaf-{r}", switch_port=f"swp{i}")
            body["ports"].append({"name": "ib0", "mac": f"52:54:00:01:{r:02x}:{i:02x}",
                                  "switch": f"ib-leaf-{r}", "switch_port": f"p{i}"})
            post(client, "/v1/nodes", body)
            names.append(name)
    with context.db.session() as session:
        session.execute(update(m.Node).values(state="available",
                                              inventory=inventory or gpu_inventory()))
    return names
