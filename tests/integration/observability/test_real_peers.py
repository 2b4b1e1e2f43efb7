"""Real Prometheus and Alertmanager (Debian packages) against metalfleet on loopback.

Prometheus loads the exported prometheus.yml and rules, scrapes /metrics and discovers the
active nodes' exporters through the HTTP SD endpoint with a viewer token. Alertmanager loads the
exported alertmanager.yml; an alert fired with amtool reaches the webhook and becomes a node
event. Missing binaries fail the tests; they never skip.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select

from metalfleet.db import models as m
from metalfleet.observability.export import ExportOptions, export
from metalfleet.runtime import AppContext
from tests.conftest import fake_node, free_port


def _binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {package}")
    return path


def _token(client: TestClient, name: str, role: str) -> str:
    r = client.post("/v1/tokens", json={"name": name, "role": role})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _wait(what: str, check: Callable[[], bool], timeout: float,
          process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{what}: the process exited:\n{log.read_text()[-3000:]}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"{what} within {timeout} s; log:\n{log.read_text()[-3000:]}")


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _start(args: list[str], log: Path,
           processes: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    processes.append(process)
    return process


def test_prometheus_scrapes_metrics_and_discovers_nodes(
    client: TestClient, context: AppContext, live_server: str, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    prometheus = _binary("prometheus", "prometheus")
    body = fake_node("g1", "52:54:00:00:00:01", labels={"metalfleet.io/address": "127.0.0.1"})
    assert client.post("/v1/nodes", json=body).status_code == 201
    with context.db.session() as session:
        node = session.scalar(select(m.Node).where(m.Node.name == "g1"))
        assert node is not None
        node.state = "active"
        session.commit()
    export(tmp_path, ExportOptions(url=live_server, scrape_interval="1s", sd_refresh="1s"))
    (tmp_path / "prometheus" / "metalfleet-sd.token").write_text(
        _token(client, "prometheus", "viewer"))
    port = free_port()
    log = tmp_path / "prometheus.log"
    process = _start([prometheus, f"--config.file={tmp_path / 'prometheus' / 'prometheus.yml'}",
                      f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                      f"--web.listen-address=127.0.0.1:{port}"], log, processes)
    api = f"http://127.0.0.1:{port}/api/v1"

    def scraped_and_discovered() -> bool:
        targets = _get(f"{api}/targets")["data"]["activeTargets"]
        metalfleet = [t for t in targets if t["labels"]["job"] == "metalfleet"]
        nodes = [t for t in targets if t["labels"]["job"] == "metalfleet-nodes"]
        return (len(nodes) == 2 and bool(metalfleet)
                and metalfleet[0]["health"] == "up")

    _wait("Prometheus did not scrape metalfleet and discover g1", scraped_and_discovered, 45,
          process, log)
    targets = _get(f"{api}/targets")["data"]["activeTargets"]
    discovered = sorted((t["labels"]["role"], t["labels"]["instance"], t["labels"]["node"])
                        for t in targets if t["labels"]["job"] == "metalfleet-nodes")
    assert discovered == [("gpu-exporter", "127.0.0.1:9400", "g1"),
                          ("node-exporter", "127.0.0.1:9100", "g1")]

    def queried() -> bool:
        result = _get(f"{api}/query?query=metalfleet_nodes")["data"]["result"]
        return any(r["metric"].get("state") == "active" and r["value"][1] == "1"
                   for r in result)

    _wait("metalfleet_nodes is not queryable", queried, 20, process, log)
    rules = _get(f"{api}/rules")["data"]["groups"]
    assert {g["name"] for g in rules} == {"metalfleet-node", "metalfleet-gpu",
                                          "metalfleet-recording"}


def test_alertmanager_posts_alerts_to_the_webhook(
    client: TestClient, context: AppContext, live_server: str, tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    alertmanager = _binary("prometheus-alertmanager", "prometheus-alertmanager")
    amtool = _binary("amtool", "prometheus-alertmanager")
    assert client.post("/v1/nodes", json=fake_node("g1", "52:54:00:00:00:01")).status_code == 201
    export(tmp_path, ExportOptions(url=live_server))
    config_path = tmp_path / "alertmanager" / "alertmanager.yml"
    config = yaml.safe_load(config_path.read_text())
    config["route"]["group_wait"] = "0s"  # deliver at once in the test
    config_path.write_text(yaml.safe_dump(config))
    (tmp_path / "alertmanager" / "metalfleet-webhook.token").write_text(
        _token(client, "alertmanager", "operator"))
    port = free_port()
    log = tmp_path / "alertmanager.log"
    process = _start([alertmanager, f"--config.file={config_path}",
                      f"--storage.path={tmp_path / 'am'}",
                      f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                     log, processes)
    url = f"http://127.0.0.1:{port}"
    _wait("Alertmanager did not start", lambda: bool(_get(f"{url}/api/v2/status")), 20,
          process, log)
    for node in ("g1", "ghost"):
        subprocess.run([amtool, f"--alertmanager.url={url}", "alert", "add", "GpuXidError",
                        f"node={node}", "severity=critical",
                        f"--annotation=summary=XID 79 on {node}"],
                       check=True, capture_output=True, timeout=30)

    def recorded() -> bool:
        items = client.get("/v1/events", params={"node": "g1", "kind": "alert"}).json()["items"]
        return bool(items)

    _wait("the alert did not reach metalfleet", recorded, 30, process, log)
    event = client.get("/v1/events", params={"node": "g1", "kind": "alert"}).json()["items"][0]
    assert event["actor"] == "alertmanager"
    assert event["data"]["alertname"] == "GpuXidError"
    assert event["data"]["status"] == "firing"
    assert event["message"] == "alert GpuXidError firing (critical): XID 79 on g1"
    assert client.get("/v1/events", params={"node": "ghost"}).json()["items"] == []
