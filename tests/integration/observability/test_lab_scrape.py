"""Real Prometheus scrapes the lab: HTTP SD lists the lab exporters, alerts fire on faults.

Prometheus (Debian package) loads the exported prometheus.yml and rules (scrape and rule
evaluation every 1 s), discovers the active lab nodes through metalfleet's SD endpoint (one
shared lab exporter, a ``__metrics_path__`` per node) and scrapes them. A lab fault (XID on
one GPU, uncorrectable ECC on another node's GPU) must then fire GpuXidError and
GpuEccDoubleBitError for exactly that node and GPU. Missing binaries fail; they never skip.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.lab.bmc_emulator import BmcServer, LabBmcEmulator
from metalfleet.lab.exporters import LabExporters, publish, start_lab_exporters
from metalfleet.lab.faults import FaultBook, LabNodeRef
from metalfleet.lab.fleet import ensure_nodes, ensure_topology, layout
from metalfleet.lab.runner import start_lab_bmcs
from metalfleet.observability.export import ExportOptions, export
from metalfleet.runtime import AppContext
from tests.conftest import fake_node, free_port
from tests.integration.observability.test_real_peers import (  # noqa: F401  (fixture)
    _binary,
    _get,
    _start,
    _token,
    _wait,
    processes,
)

LAB_NODES = 4  # lab-gpu-01..03 and lab-cpu-01


@pytest.fixture
def lab(context: AppContext) -> Iterator[tuple[LabBmcEmulator, BmcServer, LabExporters]]:
    emulator, server = start_lab_bmcs(context)
    with context.db.session() as session:
        ensure_topology(session, LAB_NODES)
    with context.db.session() as session:
        ensure_nodes(session, LAB_NODES, emulator, server.system_address,
                     context.settings.data_dir / "lab" / "nodes", context.cipher)
        for node in session.scalars(select(m.Node)):
            node.state = "active"  # deployed: what the SD lists
    exporters = start_lab_exporters(context.settings.data_dir)
    assert publish(context.db, exporters.address, [p.name for p in layout(LAB_NODES)]) == 4
    yield emulator, server, exporters
    exporters.stop()
    server.stop()


def _query(api: str, promql: str) -> list[dict[str, Any]]:
    from urllib.parse import quote

    result: list[dict[str, Any]] = _get(f"{api}/query?query={quote(promql)}")["data"]["result"]
    return result


def _firing(api: str) -> set[tuple[str, str, str]]:
    alerts = _get(f"{api}/alerts")["data"]["alerts"]
    return {(a["labels"]["alertname"], a["labels"].get("node", ""), a["labels"].get("gpu", ""))
            for a in alerts if a["state"] == "firing"}


def test_sd_lists_active_lab_nodes_at_the_lab_exporter(
    client: TestClient, context: AppContext,
    lab: tuple[LabBmcEmulator, BmcServer, LabExporters],
) -> None:
    _, _, exporters = lab
    assert client.post("/v1/nodes", json=fake_node("g1", "52:54:00:00:00:01", labels={
        "metalfleet.io/address": "10.0.0.11"})).status_code == 201
    with context.db.session() as session:
        for node in session.scalars(select(m.Node).where(m.Node.name.in_(["g1", "lab-cpu-01"]))):
            node.state = "active" if node.name == "g1" else "available"
    groups = {(g["labels"]["node"], g["labels"]["role"]): g
              for g in client.get("/v1/observability/prometheus/sd").json()}
    assert sorted(groups) == [("g1", "gpu-exporter"), ("g1", "node-exporter"),
                              ("lab-gpu-01", "agent-exporter"), ("lab-gpu-02", "agent-exporter"),
                              ("lab-gpu-03", "agent-exporter")], "lab-cpu-01 is not deployed"
    lab_group = groups[("lab-gpu-02", "agent-exporter")]
    assert lab_group["targets"] == [exporters.address]
    assert lab_group["labels"]["__metrics_path__"] == "/nodes/lab-gpu-02/metrics"
    assert "__metrics_path__" not in groups[("g1", "gpu-exporter")]["labels"]
    assert groups[("g1", "gpu-exporter")]["targets"] == ["10.0.0.11:9400"]
    assert publish(context.db, exporters.address, ["lab-gpu-02"]) == 0, "already published"


@pytest.mark.slow
def test_prometheus_scrapes_the_lab_and_fires_gpu_alerts(
    client: TestClient, context: AppContext, live_server: str, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811  (the shared fixture)
    lab: tuple[LabBmcEmulator, BmcServer, LabExporters],
) -> None:
    prometheus = _binary("prometheus", "prometheus")
    emulator, _, exporters = lab
    sd = client.get("/v1/observability/prometheus/sd").json()
    assert sorted((g["labels"]["node"], g["targets"], g["labels"]["__metrics_path__"])
                  for g in sd) == sorted(
        (p.name, [exporters.address], f"/nodes/{p.name}/metrics") for p in layout(LAB_NODES))
    assert {g["labels"]["rack"] for g in sd} == {"lab-rack-1", "lab-rack-2"}

    export(tmp_path, ExportOptions(url=live_server, scrape_interval="1s", sd_refresh="1s"))
    (tmp_path / "prometheus" / "metalfleet-sd.token").write_text(
        _token(client, "prometheus", "viewer"))
    port = free_port()
    log = tmp_path / "prometheus.log"
    process = _start([prometheus, f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}",
                      f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{port}"], log, processes)
    api = f"http://127.0.0.1:{port}/api/v1"
    names = {p.name for p in layout(LAB_NODES)}
    gpu_nodes = {p.name for p in layout(LAB_NODES) if p.spec.gpus.count}

    def all_up() -> bool:
        up = _query(api, 'up{job="metalfleet-nodes"}')
        return ({r["metric"]["node"] for r in up if r["value"][1] == "1"} == names
                and {r["metric"]["node"] for r in _query(
                    api, "count by (node) (DCGM_FI_DEV_XID_ERRORS)")} == gpu_nodes)

    _wait("Prometheus did not discover and scrape every lab node", all_up, 30, process, log)
    gpus = _query(api, "count by (node) (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL)")
    assert {r["metric"]["node"]: r["value"][1] for r in gpus} == dict.fromkeys(gpu_nodes, "8")
    sample = _query(api, 'DCGM_FI_DEV_XID_ERRORS{node="lab-gpu-01", gpu="0"}')[0]["metric"]
    assert sample["role"] == "agent-exporter" and sample["modelName"].startswith("NVIDIA H100")
    assert sample["class"] == "gpu-h100-8x" and sample["rack"] == "lab-rack-1"
    assert _firing(api) == set()

    book = FaultBook(context.settings.data_dir / "lab" / "faults.json", emulator)
    with context.db.session() as session:
        refs = {n.name: LabNodeRef.of(n) for n in session.scalars(select(m.Node))}
    injected = time.monotonic()
    book.inject(refs["lab-gpu-02"], "gpu-xid", "GPU5")
    book.inject(refs["lab-gpu-01"], "gpu-ecc", "GPU2")
    expected = {("GpuXidError", "lab-gpu-02", "5"), ("GpuEccDoubleBitError", "lab-gpu-01", "2")}
    _wait("the GPU alerts did not fire", lambda: _firing(api) == expected, 20, process, log)
    fired_s = time.monotonic() - injected
    print(f"\nfault -> alert firing in Prometheus: {fired_s:.2f} s "
          "(scrape_interval 1s, evaluation_interval 1s, for: 0m)")

    book.clear(refs["lab-gpu-02"])
    book.clear(refs["lab-gpu-01"])
    _wait("the alerts did not resolve after the repair", lambda: _firing(api) == set(), 20,
          process, log)
