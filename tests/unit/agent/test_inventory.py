from __future__ import annotations

import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from metalfleet.agent import inventory as inventory_module
from metalfleet.agent.hardware_root import HardwareRoot
from metalfleet.agent.inventory import collect_inventory
from metalfleet.agent.main import main
from metalfleet.lab.synthetic_hardware import (
    IbSpec,
    LabHardwareSpec,
    build_root,
    cpu_node_spec,
    gpu_node_spec,
)


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


# --- HardwareRoot -------------------------------------------------------------------------


def test_hardware_root_readers(tmp_path: Path) -> None:
    _write(tmp_path, "sys/x/vendor", "0x10de")
    _write(tmp_path, "sys/x/size", "  2048 ")
    _write(tmp_path, "sys/x/bad", "abc")
    for name in ("mlx5_10", "mlx5_2", "mlx5_1"):
        (tmp_path / "sys/ib" / name).mkdir(parents=True)
    root = HardwareRoot(tmp_path)
    assert root.resolve("/sys/x") == tmp_path / "sys/x" == root.resolve("sys/x")
    assert root.read_int("sys/x/vendor", 16) == 0x10DE
    assert root.read_int("sys/x/size") == 2048
    assert root.read_int("sys/x/bad") is None
    assert root.read_text("sys/x/missing") is None
    assert root.list_dir("sys/missing") is None
    assert root.list_dir("sys/ib") == ["mlx5_1", "mlx5_2", "mlx5_10"]
    assert not root.is_host
    assert HardwareRoot("/").is_host


# --- synthetic roots ----------------------------------------------------------------------


@pytest.fixture
def gpu_root(tmp_path: Path) -> Path:
    return build_root(tmp_path / "gpu7", gpu_node_spec(7))


def test_gpu_node_inventory_matches_spec(gpu_root: Path) -> None:
    spec = gpu_node_spec(7)
    inv = collect_inventory(HardwareRoot(gpu_root))
    json.dumps(inv)  # serialisable

    assert inv["cpu"] == {
        "model": spec.cpu_model,
        "sockets": 2,
        "cores": 112,
        "threads": 224,
        "arch": "x86_64",
        "flags": inv["cpu"]["flags"],
    }
    assert {"avx512f", "amx_tile", "vmx"} <= set(inv["cpu"]["flags"])
    assert inv["memory"] == {"total_mib": 2048 * 1024}
    assert inv["disks"] == [
        {
            "name": "nvme0n1",
            "path": "/dev/nvme0n1",
            "size_bytes": 3_840_755_982_336,
            "model": spec.disk.model,
            "serial": spec.disk.serial,
            "rotational": False,
            "type": "nvme",
        }
    ]
    assert [
        (n["name"], n["mac"], n["speed_mbps"], n["link"], n["driver"]) for n in inv["nics"]
    ] == [(nic.name, nic.mac, nic.speed_mbps, "up", "mlx5_core") for nic in spec.nics]
    gpus = inv["gpus"]
    assert [g["index"] for g in gpus] == list(range(8))
    assert {g["name"] for g in gpus} == {"NVIDIA H100 80GB HBM3"}
    assert {g["memory_mib"] for g in gpus} == {81559}
    assert all(g["nvlink"] for g in gpus)
    assert len({g["uuid"] for g in gpus}) == 8
    pci = {p["address"]: p for p in inv["pci"]}
    for gpu in gpus:  # NVML bus ids are normalised to sysfs addresses
        assert pci[gpu["pci_bus_id"]]["vendor_id"] == "0x10de"
        assert pci[gpu["pci_bus_id"]]["class_code"] == "0x030200"
    assert inv["gpu_driver"] == {"driver_version": "550.90.07", "cuda_version": "12.4"}
    assert inv["infiniband"] == [
        {
            "device": f"mlx5_{i}",
            "port": 1,
            "state": "ACTIVE",
            "rate_gbps": 400,
            "link_layer": "InfiniBand",
        }
        for i in range(8)
    ]
    assert inv["dmi"] == {
        "sys_vendor": "Supermicro",
        "product_name": "SYS-821GE-TNHR",
        "product_serial": "LABGPU00007",
        "bios_version": "2.1",
        "board_name": "X13DEG-OAD",
    }


def test_cpu_node_inventory(tmp_path: Path) -> None:
    spec = cpu_node_spec(2)
    inv = collect_inventory(HardwareRoot(build_root(tmp_path / "cpu2", spec)))
    assert inv["cpu"]["model"] == "AMD EPYC 9554 64-Core Processor"
    assert (inv["cpu"]["sockets"], inv["cpu"]["cores"], inv["cpu"]["threads"]) == (2, 128, 256)
    assert "svm" in inv["cpu"]["flags"]
    assert inv["gpus"] == [] and inv["gpu_driver"] is None and inv["infiniband"] == []
    assert [n["mac"] for n in inv["nics"]] == [nic.mac for nic in spec.nics]
    assert inv["disks"][0]["size_bytes"] == spec.disk.size_bytes


def test_gpus_from_pci_when_nvml_is_absent(gpu_root: Path) -> None:
    (gpu_root / "run/metalfleet/nvml.json").unlink()
    inv = collect_inventory(HardwareRoot(gpu_root))
    # 8 H100s count; the 4 NVSwitches (NVIDIA vendor, bridge class) do not
    nvidia = [p for p in inv["pci"] if p["vendor_id"] == "0x10de"]
    assert len(nvidia) == 12
    assert len(inv["gpus"]) == 8
    assert all(g["name"] is None and g["nvlink"] is False for g in inv["gpus"])
    assert inv["gpu_driver"] is None


def test_many_ib_ports_in_natural_order(tmp_path: Path) -> None:
    spec = LabHardwareSpec(ib=IbSpec(ports=12, rate_gbps=200))
    inv = collect_inventory(HardwareRoot(build_root(tmp_path / "n", spec)))
    assert [p["device"] for p in inv["infiniband"]] == [f"mlx5_{i}" for i in range(12)]
    assert {p["rate_gbps"] for p in inv["infiniband"]} == {200}


# --- hand-written trees -------------------------------------------------------------------


def test_handwritten_tree_parsing(tmp_path: Path) -> None:
    for name in ("loop0", "ram0", "dm-0", "zram0"):
        _write(tmp_path, f"sys/block/{name}/size", "100")
    _write(tmp_path, "sys/block/sda/size", "2000")
    _write(tmp_path, "sys/block/sda/queue/rotational", "1")
    _write(tmp_path, "sys/block/sdb/size", "4000")
    _write(tmp_path, "sys/block/sdb/queue/rotational", "0")
    _write(tmp_path, "sys/class/net/lo/operstate", "unknown")
    _write(tmp_path, "sys/class/net/eno1/address", "AA:BB:CC:DD:EE:FF")
    _write(tmp_path, "sys/class/net/eno1/operstate", "down")
    _write(tmp_path, "sys/class/net/eno1/speed", "-1")
    _write(tmp_path, "sys/class/net/eno1/device/uevent", "PCI_ID=1\nDRIVER=ice")
    _write(tmp_path, "sys/class/infiniband/mlx4_0/ports/2/state", "1: DOWN")
    _write(tmp_path, "sys/class/infiniband/mlx4_0/ports/2/rate", "2.5 Gb/sec (1X SDR)")
    _write(tmp_path, "sys/class/infiniband/mlx4_0/ports/2/link_layer", "Ethernet")
    _write(tmp_path, "sys/bus/pci/devices/0000:03:00.0/vendor", "0x10de")
    _write(tmp_path, "sys/bus/pci/devices/0000:03:00.0/device", "0x20b5")
    _write(tmp_path, "sys/bus/pci/devices/0000:03:00.0/class", "0x030000")
    _write(tmp_path, "proc/meminfo", "MemFree: 1 kB\nMemTotal: 2097152 kB")
    _write(
        tmp_path,
        "proc/cpuinfo",
        "processor\t: 0\nCPU architecture: 8\nFeatures\t: fp asimd sve\n\n"
        "processor\t: 1\nCPU architecture: 8\nFeatures\t: fp asimd sve\n",
    )
    for cpu, core in ((0, 0), (1, 1)):
        _write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/topology/physical_package_id", "0")
        _write(tmp_path, f"sys/devices/system/cpu/cpu{cpu}/topology/core_id", str(core))

    inv = collect_inventory(HardwareRoot(tmp_path))

    assert [(d["name"], d["type"], d["size_bytes"]) for d in inv["disks"]] == [
        ("sda", "hdd", 2000 * 512),
        ("sdb", "ssd", 4000 * 512),
    ]
    assert inv["nics"] == [
        {"name": "eno1", "mac": "aa:bb:cc:dd:ee:ff", "speed_mbps": None, "link": "down",
         "driver": "ice"}
    ]  # fmt: skip
    assert inv["infiniband"] == [
        {"device": "mlx4_0", "port": 2, "state": "DOWN", "rate_gbps": 2.5,
         "link_layer": "Ethernet"}
    ]  # fmt: skip
    assert [g["pci_bus_id"] for g in inv["gpus"]] == ["0000:03:00.0"]
    assert inv["memory"] == {"total_mib": 2048}
    cpu = inv["cpu"]
    assert (cpu["arch"], cpu["sockets"], cpu["cores"], cpu["threads"]) == ("aarch64", 1, 2, 2)
    assert cpu["flags"] == ["asimd", "sve"]


def test_empty_root_does_not_crash(tmp_path: Path) -> None:
    inv = collect_inventory(HardwareRoot(tmp_path))
    assert inv["cpu"]["threads"] == 0
    assert inv["memory"] == {"total_mib": None}
    assert inv["disks"] == inv["nics"] == inv["pci"] == inv["gpus"] == inv["infiniband"] == []
    assert set(inv["dmi"].values()) == {None}


# --- the real machine ---------------------------------------------------------------------


def test_real_root_of_this_machine() -> None:
    inv = collect_inventory(HardwareRoot("/"))
    json.dumps(inv)
    assert inv["cpu"]["threads"] == os.cpu_count()
    assert inv["cpu"]["cores"] >= inv["cpu"]["sockets"] >= 1
    assert inv["memory"]["total_mib"] > 0
    assert all(not d["name"].startswith(("loop", "ram", "dm-")) for d in inv["disks"])
    assert all(n["name"] != "lo" for n in inv["nics"])


def _fake_pynvml(calls: list[str]) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    handle = object()
    values: dict[str, Any] = {
        "nvmlInit": lambda: calls.append("init"),
        "nvmlShutdown": lambda: calls.append("shutdown"),
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: handle,
        "nvmlDeviceGetName": lambda h: b"NVIDIA A100-SXM4-80GB",
        "nvmlDeviceGetUUID": lambda h: "GPU-abc",
        "nvmlDeviceGetMemoryInfo": lambda h: types.SimpleNamespace(total=80 * 1024**3),
        "nvmlDeviceGetPciInfo": lambda h: types.SimpleNamespace(busId="00000000:07:00.0"),
        "nvmlDeviceGetNvLinkState": lambda h, link: 1,
        "nvmlSystemGetDriverVersion": lambda: "535.1",
        "nvmlSystemGetCudaDriverVersion": lambda: 12020,
        "NVML_NVLINK_MAX_LINKS": 12,
    }
    for name, value in values.items():
        setattr(module, name, value)
    return module


def test_real_root_uses_pynvml_when_present(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "pynvml", _fake_pynvml(calls))
    monkeypatch.setattr(inventory_module, "NVML_JSON", "run/metalfleet/absent-for-test.json")
    inv = collect_inventory(HardwareRoot("/"))
    assert inv["gpus"] == [
        {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "uuid": "GPU-abc", "memory_mib": 81920,
         "pci_bus_id": "0000:07:00.0", "nvlink": True}
    ]  # fmt: skip
    assert inv["gpu_driver"] == {"driver_version": "535.1", "cuda_version": "12.2"}
    assert calls == ["init", "shutdown"]


def test_real_root_without_pynvml_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    inv = collect_inventory(HardwareRoot("/"))
    assert inv["gpu_driver"] is None
    assert all(g["name"] is None for g in inv["gpus"])  # PCI fallback only


def test_agent_cli_inventory(gpu_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inventory", "--root", str(gpu_root)]) == 0
    assert len(json.loads(capsys.readouterr().out)["gpus"]) == 8
    with pytest.raises(SystemExit):
        main(["inventory", "--bogus"])
