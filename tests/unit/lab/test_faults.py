"""Lab faults: injected into a synthetic root and the emulated BMC, found by the real checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.health import run_checks
from metalfleet.agent.inventory import collect_inventory
from metalfleet.core.errors import ValidationError
from metalfleet.drivers.redfish.telemetry import read_log_entries, read_sensors
from metalfleet.lab.bmc_emulator import LabBmcEmulator, build_app
from metalfleet.lab.faults import KINDS, FaultBook, LabNodeRef
from metalfleet.lab.fleet import lab_system, layout
from metalfleet.lab.synthetic_hardware import build_root

PASSWORD = "lab-secret"


@pytest.fixture
def emulator() -> LabBmcEmulator:
    return LabBmcEmulator()


def _node(tmp_path: Path, emulator: LabBmcEmulator, index: int) -> LabNodeRef:
    plan = layout(4)[index]
    root = build_root(tmp_path / plan.name, plan.spec)
    emulator.add_system(lab_system(plan, PASSWORD))
    return LabNodeRef(plan.name, root, plan.system_id)


@pytest.fixture
def gpu(tmp_path: Path, emulator: LabBmcEmulator) -> LabNodeRef:
    return _node(tmp_path, emulator, 0)


@pytest.fixture
def book(tmp_path: Path, emulator: LabBmcEmulator) -> FaultBook:
    return FaultBook(tmp_path / "faults.json", emulator)


def _checks(ref: LabNodeRef, expected: dict[str, Any]) -> list[tuple[str, str, str]]:
    report = run_checks(HardwareRoot(ref.root), expected)
    return sorted((f["check"], f["component"], f["severity"]) for f in report.findings)


def _redfish(emulator: LabBmcEmulator, ref: LabNodeRef) -> Any:
    client = TestClient(build_app(emulator))
    client.auth = ("admin", PASSWORD)

    def fetch(path: str) -> dict[str, Any]:
        response = client.get(path)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    return fetch, fetch(f"/redfish/v1/Systems/{ref.system_id}")


@pytest.mark.parametrize(("kind", "component", "finding"), [
    ("gpu-xid", "GPU3", ("gpu-xid", "GPU3", "critical")),
    ("gpu-ecc", "5", ("gpu-ecc", "GPU5", "critical")),
    ("gpu-missing", None, ("gpu-missing", "GPU0", "critical")),
    ("ib-link-down", "mlx5_2", ("ib-link-down", "mlx5_2", "critical")),
    ("disk-smart", None, ("disk-smart", "nvme0n1", "critical")),
    ("pcie-width", "GPU6", ("pcie-width", "GPU6", "warning")),
    ("edac", "mc1", ("edac", "mc1", "critical")),
])
def test_each_in_band_fault_is_found_by_the_agent_checks_and_cleared(
        gpu: LabNodeRef, book: FaultBook, kind: str, component: str | None,
        finding: tuple[str, str, str]) -> None:
    expected = collect_inventory(HardwareRoot(gpu.root))
    assert _checks(gpu, expected) == []
    fault = book.inject(gpu, kind, component)
    assert (fault.kind, fault.component) == (kind, finding[1])
    assert _checks(gpu, expected) == [finding]
    assert [f.kind for f in book.active()] == [kind]
    assert [f.kind for f in book.clear(gpu)] == [kind]
    assert _checks(gpu, expected) == []
    assert book.active() == []


def test_fan_fault_shows_in_the_bmc_sensors_and_sel_then_clears(
        gpu: LabNodeRef, book: FaultBook, emulator: LabBmcEmulator) -> None:
    book.inject(gpu, "fan", "2")
    fetch, system = _redfish(emulator, gpu)
    fans = {s["name"]: s for s in read_sensors(fetch, system) if s["kind"] == "fan"}
    assert fans["FAN2"]["health"] == "Critical" and fans["FAN2"]["reading"] == 0
    assert fans["FAN1"]["health"] == "OK"
    [entry] = read_log_entries(fetch, system)
    assert entry["severity"] == "critical" and "FAN2" in entry["message"]
    assert entry["sensor"] == "Fan"
    book.clear(gpu)
    fetch, system = _redfish(emulator, gpu)
    assert {s["health"] for s in read_sensors(fetch, system)} == {"OK"}
    assert [e["severity"] for e in read_log_entries(fetch, system)] == ["critical", "info"]


def test_gpu_xid_also_leaves_a_bmc_log_entry(gpu: LabNodeRef, book: FaultBook,
                                             emulator: LabBmcEmulator) -> None:
    book.inject(gpu, "gpu-xid", "GPU1")
    fetch, system = _redfish(emulator, gpu)
    [entry] = read_log_entries(fetch, system)
    assert "Xid 79" in entry["message"] and entry["severity"] == "critical"


def test_several_faults_on_one_node_clear_together(gpu: LabNodeRef, book: FaultBook) -> None:
    expected = collect_inventory(HardwareRoot(gpu.root))
    for kind in KINDS:  # a GPU gone from NVML shows no ECC counters: take another one
        book.inject(gpu, kind, "GPU7" if kind == "gpu-missing" else None)
    checks = {check for check, _, _ in _checks(gpu, expected)}
    assert checks == {"gpu-xid", "gpu-ecc", "gpu-missing", "ib-link-down", "disk-smart",
                      "pcie-width", "edac"}
    assert len(book.clear(gpu)) == len(KINDS)
    assert _checks(gpu, expected) == []


def test_faults_survive_a_rebuild_of_the_roots(tmp_path: Path, gpu: LabNodeRef, book: FaultBook,
                                               emulator: LabBmcEmulator) -> None:
    expected = collect_inventory(HardwareRoot(gpu.root))
    book.inject(gpu, "ib-link-down", "mlx5_1")
    build_root(gpu.root, layout(4)[0].spec)  # what `up --lab` does on start
    assert _checks(gpu, expected) == []
    restarted = FaultBook(tmp_path / "faults.json", emulator)
    assert restarted.reapply({gpu.name: gpu}) == 1
    assert _checks(gpu, expected) == [("ib-link-down", "mlx5_1", "critical")]


def test_invalid_requests_say_how_to_fix_them(tmp_path: Path, gpu: LabNodeRef, book: FaultBook,
                                              emulator: LabBmcEmulator) -> None:
    cpu = _node(tmp_path, emulator, 3)
    with pytest.raises(ValidationError, match="one of gpu-xid"):
        book.inject(gpu, "psu")
    with pytest.raises(ValidationError, match="no GPUs"):
        book.inject(cpu, "gpu-xid")
    with pytest.raises(ValidationError, match="no InfiniBand"):
        book.inject(cpu, "ib-link-down")
    with pytest.raises(ValidationError, match=r"GPU0\.\.GPU7"):
        book.inject(gpu, "gpu-ecc", "GPU8")
    with pytest.raises(ValidationError, match="no fan"):
        book.inject(gpu, "fan", "FAN9")
    assert book.active() == []
    fault = book.inject(cpu, "disk-smart")  # CPU nodes have disks
    assert fault.component == "nvme0n1"
