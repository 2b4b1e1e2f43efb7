"""The whole alert path with the real peers: lab fault -> Prometheus -> Alertmanager -> healing.

A GPU node of a cluster is deployed (active, so the SD lists its lab exporter). Debian's
Prometheus scrapes it with the exported rules and sends alerts to a real Alertmanager, which
posts to metalfleet's webhook with the exported configuration. An XID injected on that GPU
must end with the node drained into maintenance with a repair ticket whose evidence names the
alert, and a spare in its place in the cluster; once the fault is repaired the resolved alert
clears the signal. The lab's in-band health loop is NOT running here, so the alert path alone
does the work. Missing binaries fail the test; they never skip.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.lab.bmc_emulator import BmcServer, LabBmcEmulator
from metalfleet.lab.exporters import LabExporters
from metalfleet.lab.faults import FaultBook, LabNodeRef
from metalfleet.observability.export import ExportOptions, export
from metalfleet.runtime import AppContext
from tests.conftest import free_port
from tests.integration.observability.test_lab_scrape import lab  # noqa: F401
from tests.integration.observability.test_real_peers import (  # noqa: F401  (fixture)
    _binary,
    _get,
    _start,
    _token,
    _wait,
    processes,
)

GPU_CLASS = "gpu-h100-8x"


def _deploy_one_node_cluster(client: TestClient, context: AppContext) -> str:
    """A one-node cluster whose member is deployed; every other lab node stays a spare."""
    with context.db.session() as session:
        for node in session.scalars(select(m.Node)):
            node.state = "available"
    r = client.post("/v1/images", json={"name": "lab-os", "location": "http://127.0.0.1/x.raw"})
    assert r.status_code == 201, r.text
    r = client.post("/v1/clusters", json={"name": "train", "node_class": GPU_CLASS, "count": 1,
                                          "scheduler": "none"})
    assert r.status_code == 201, r.text
    member = str(r.json()["nodes"][0]["name"])
    with context.db.session() as session:
        node = session.scalars(select(m.Node).where(m.Node.name == member)).one()
        node.state = "active"
        node.image_id = session.scalars(select(m.Image.id).where(m.Image.name == "lab-os")).one()
        node.power_state = "on"
    return member


@pytest.mark.slow
def test_gpu_fault_alert_drains_and_replaces_through_prometheus_and_alertmanager(
    client: TestClient, context: AppContext, live_server: str, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],  # noqa: F811
    lab: tuple[LabBmcEmulator, BmcServer, LabExporters],  # noqa: F811
) -> None:
    prometheus = _binary("prometheus", "prometheus")
    alertmanager = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    emulator, _, _ = lab
    member = _deploy_one_node_cluster(client, context)

    am_port, prom_port = free_port(), free_port()
    export(tmp_path, ExportOptions(url=live_server, alertmanager=f"127.0.0.1:{am_port}",
                                   scrape_interval="1s", sd_refresh="1s"))
    (tmp_path / "prometheus" / "metalfleet-sd.token").write_text(
        _token(client, "prometheus", "viewer"))
    (tmp_path / "alertmanager" / "metalfleet-webhook.token").write_text(
        _token(client, "alertmanager", "operator"))
    am_config = tmp_path / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(am_config.read_text())
    # Deliver at once and send the resolved notice quickly; production keeps the exported values.
    config["route"].update(group_wait="0s", group_interval="1s")
    am_config.write_text(yaml.safe_dump(config))
    am_log, prom_log = tmp_path / "alertmanager.log", tmp_path / "prometheus.log"
    am = _start([alertmanager, f"--config.file={am_config}", f"--storage.path={tmp_path / 'am'}",
                 f"--web.listen-address=127.0.0.1:{am_port}", "--cluster.listen-address="],
                am_log, processes)
    _wait("Alertmanager did not start",
          lambda: bool(_get(f"http://127.0.0.1:{am_port}/api/v2/status")), 20, am, am_log)
    prom = _start([prometheus,
                   f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}",
                   f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{prom_port}"], prom_log, processes)
    api = f"http://127.0.0.1:{prom_port}/api/v1"

    def scraped() -> bool:
        up = _get(f"{api}/query?query=up%7Bjob%3D%22metalfleet-nodes%22%7D")["data"]["result"]
        return any(r["metric"]["node"] == member and r["value"][1] == "1" for r in up)

    _wait(f"Prometheus did not scrape {member}", scraped, 30, prom, prom_log)

    book = FaultBook(context.settings.data_dir / "lab" / "faults.json", emulator)
    with context.db.session() as session:
        ref = LabNodeRef.of(session.scalars(select(m.Node).where(m.Node.name == member)).one())
    injected = time.monotonic()
    book.inject(ref, "gpu-xid", "GPU3")

    def health() -> dict[str, object]:
        body: dict[str, object] = client.get(f"/v1/nodes/{member}/health").json()
        return body

    _wait("the alert did not put the node into maintenance",
          lambda: bool(health()["maintenance"]), 45, prom, prom_log)
    healed_s = time.monotonic() - injected
    body = health()
    assert body["health"] == "failed"
    signals = body["signals"]
    assert isinstance(signals, list)
    alert_signals = [s for s in signals if s["source"] == "alert"]
    assert [s["check"] for s in alert_signals] == ["GpuXidError"]
    ticket = body["ticket"]
    assert isinstance(ticket, dict) and ticket["status"] == "open"
    assert ticket["cluster"] == "train" and "GpuXidError" in str(ticket["evidence"])
    spare = ticket["replacement_node"]
    assert spare and spare != member
    members = [n["name"] for n in client.get("/v1/clusters/train").json()["nodes"]]
    assert members == [spare]
    assert client.get(f"/v1/nodes/{spare}").json()["state"] == "deploying"
    assert client.get(f"/v1/nodes/{member}").json()["state"] == "releasing"
    print(f"\nfault -> drained, ticket and spare via Prometheus + Alertmanager: {healed_s:.2f} s"
          " (scrape 1 s, rule evaluation 1 s, group_wait 0 s)")

    book.clear(ref)

    def alert_cleared() -> bool:
        return not [s for s in health()["signals"]  # type: ignore[attr-defined]
                    if s["source"] == "alert"]

    _wait("the resolved alert did not clear the signal", alert_cleared, 45, am, am_log)
