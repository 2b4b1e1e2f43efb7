"""`metalfleet up --lab 4`, then `metalfleet lab fault`: detected, remediated, repaired.

The whole path in real processes: the lab's health loop runs the agent's checks on the
synthetic roots, the health engine fails and quarantines the node, clearing the fault lets the
node be re-validated and return, with no manual step.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.labproc import Lab

pytestmark = pytest.mark.slow
NODE = "lab-gpu-01"


@pytest.fixture
def lab(tmp_path: Path, db_url: str) -> Iterator[Lab]:
    running = Lab(tmp_path / "data", db_url, size=4)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def _wait(what: str, probe: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout} s"
        time.sleep(0.2)


def test_fault_detected_quarantined_cleared_and_revalidated(lab: Lab) -> None:
    token = (lab.data_dir / "admin.token").read_text().strip()
    api = httpx.Client(base_url=lab.url, headers={"Authorization": f"Bearer {token}"},
                       timeout=10)

    def node() -> dict[str, Any]:
        body: dict[str, Any] = api.get(f"/v1/nodes/{NODE}").json()
        return body

    def health() -> dict[str, Any]:
        body: dict[str, Any] = api.get(f"/v1/nodes/{NODE}/health").json()
        return body

    # the lab builds its nodes after the API answers: 404 until then
    _wait("lab-gpu-01 available", lambda: node().get("state") == "available", 45)

    injected = lab.cli("lab", "fault", NODE, "gpu-xid", "--component", "GPU3")
    assert "gpu-xid injected on GPU3" in injected.stdout
    started = time.monotonic()
    failed = _wait("health failed", lambda: (h := health())["health"] == "failed" and h, 10)
    detect_s = time.monotonic() - started
    assert detect_s < 5, f"fault to failed took {detect_s:.1f} s"
    print(f"fault injected -> health failed: {detect_s * 1000:.0f} ms (CLI round trip incl.)")
    [signal] = failed["signals"]
    assert (signal["check"], signal["component"]) == ("gpu-xid", "GPU3")
    _wait("maintenance", lambda: health()["maintenance"], 5)
    listed = json.loads(lab.cli("lab", "faults", "-o", "json").stdout)
    assert [(f["node"], f["kind"]) for f in listed] == [(NODE, "gpu-xid")]

    cleared = lab.cli("lab", "fault", NODE, "--clear")
    assert "cleared gpu-xid on GPU3" in cleared.stdout
    assert json.loads(lab.cli("lab", "faults", "-o", "json").stdout) == []
    _wait("signal cleared", lambda: not [s for s in health()["signals"]
                                         if s["status"] == "active"], 5)
    # re-validation (acceptance run) and back to service, with no manual step
    repaired = time.monotonic()
    _wait("back in service", lambda: (h := health())["health"] == "ok"
          and not h["maintenance"] and node()["state"] == "available", 40)
    print(f"fault cleared -> re-validated and back in service: "
          f"{time.monotonic() - repaired:.1f} s")

    wrong = lab.cli("lab", "fault", "lab-cpu-01", "gpu-xid", check=False)
    assert wrong.returncode == 1 and "no GPUs" in wrong.stderr
