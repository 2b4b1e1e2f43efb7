"""``metalfleet-agent monitor`` against a real API: reports, clears, survives outages."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from metalfleet.agent import monitor as monitor_module
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.main import main
from metalfleet.agent.monitor import Monitor
from metalfleet.lab.synthetic_hardware import build_root, gpu_node_spec
from tests.conftest import fake_node, free_port


def _wait(what: str, check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _xid(root: Path, gpu: int, code: int) -> None:
    nvml = json.loads((root / "run/metalfleet/nvml.json").read_text())
    bus = nvml["devices"][gpu]["pci_bus_id"].lower()[4:].rsplit(".", 1)[0]
    kern = root / "var/log/kern.log"
    kern.write_text(kern.read_text().rstrip("\n")
                    + f"\nkernel: [  120.5] NVRM: Xid (PCI:{bus}): {code}, pid=77, fallen off\n")


@pytest.fixture
def operator_token(client: TestClient) -> str:
    r = client.post("/v1/tokens", json={"name": "agent-monitor", "role": "operator"})
    assert r.status_code == 201, r.text
    return str(r.json()["token"])


def _metrics(url: str) -> dict[str, list[dict[str, str]]]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {f.name: [dict(s.labels) for s in f.samples]
            for f in text_string_to_metric_families(text)}


def test_monitor_reports_findings_then_clears_them(
    client: TestClient, live_server: str, tmp_path: Path,
) -> None:
    assert client.post("/v1/nodes", json=fake_node("g1", "52:54:00:00:00:01")).status_code == 201
    root = build_root(tmp_path / "g1", gpu_node_spec(0))
    _xid(root, 3, 79)
    token_file = tmp_path / "token"  # the node's own monitor credential, no operator token
    token_file.write_text(client.post("/v1/nodes/g1/monitor-credential").json()["credential"])
    port = free_port()
    stop = threading.Event()
    thread = threading.Thread(target=monitor_module.serve, kwargs={
        "api_url": live_server, "token": token_file.read_text().strip(), "node": "g1",
        "root": HardwareRoot(root), "interval_s": 0.3, "host": "127.0.0.1", "port": port,
        "stop": stop}, daemon=True)
    thread.start()
    try:
        def signals() -> list[tuple[str, str, str]]:
            body = client.get("/v1/nodes/g1/health").json()
            return [(s["check"], s["component"], s["source"]) for s in body["signals"]
                    if s["status"] == "active"]

        _wait("the XID never reached metalfleet", lambda: signals() == [
            ("gpu-xid", "GPU3", "agent")])
        assert client.get("/v1/nodes/g1/health").json()["health"] == "failed"
        failed = _metrics(f"http://127.0.0.1:{port}/metrics")["metalfleet_check_failed"]
        assert {(s["check"], s["component"]) for s in failed} == {("gpu-xid", "GPU3")}

        build_root(root, gpu_node_spec(0))  # the GPU is reset: a new boot, no XID
        _wait("the cleared XID stayed active", lambda: signals() == [])
        _wait("the exporter still shows the XID", lambda: "metalfleet_check_failed" not in
              _metrics(f"http://127.0.0.1:{port}/metrics"))
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_a_refused_report_waits_for_the_next_round(
    live_server: str, operator_token: str, tmp_path: Path,
) -> None:
    root = HardwareRoot(build_root(tmp_path / "n1", gpu_node_spec(1)))
    monitor = Monitor(live_server, operator_token, "ghost", root, interval_s=30.0)
    started = time.monotonic()
    monitor.fetch_expected()
    monitor._deliver(monitor.check_once())
    assert time.monotonic() - started < 5, "a 404 is not retried within the round"
    assert monitor.failures == 1 and monitor.reports_sent == 0
    assert not monitor.looked_up and monitor.expected is None


class _Recorder(BaseHTTPRequestHandler):
    reports: ClassVar[list[dict[str, Any]]] = []

    def do_GET(self) -> None:
        self._answer(200, {"name": "n1", "inventory": {"gpus": []}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length))
        type(self).reports.append({"path": self.path, "auth": self.headers["Authorization"],
                                   **body})
        self._answer(200, {"node": "n1", "health": "ok"})

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[int, type[_Recorder]]]:
    port = free_port()
    yield port, _Recorder
    _Recorder.reports = []


def test_monitor_survives_an_api_outage(tmp_path: Path,
                                        recorder: tuple[int, type[_Recorder]]) -> None:
    port, handler = recorder
    handler.reports = []
    root = HardwareRoot(build_root(tmp_path / "n1", gpu_node_spec(1)))
    stop = threading.Event()
    monitor = Monitor(f"http://127.0.0.1:{port}", "s3cret", "n1", root, interval_s=1.0,
                      timeout_s=2.0, stop=stop)
    thread = threading.Thread(target=monitor.run, daemon=True)
    thread.start()
    server: ThreadingHTTPServer | None = None
    try:
        _wait("no failed attempt while the API was down", lambda: monitor.failures >= 2)
        assert monitor.reports_sent == 0 and thread.is_alive()
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _wait("the monitor never reported once the API came back",
              lambda: monitor.reports_sent >= 1)
        assert monitor.failures == 0
        first = handler.reports[0]
        assert first["path"] == "/v1/nodes/n1/health-reports"
        assert first["auth"] == "Bearer s3cret" and first["source"] == "agent"
        assert "gpu-xid" in first["checks_run"] and first["findings"] == []
    finally:
        stop.set()
        thread.join(10)
        if server is not None:
            server.shutdown()
            server.server_close()
    assert not thread.is_alive()


def test_monitor_command_line_requires_a_token(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["monitor", "--api", "http://127.0.0.1:1", "--node", "n1"])
    assert info.value.code == 2
    assert "--token" in capsys.readouterr().err
