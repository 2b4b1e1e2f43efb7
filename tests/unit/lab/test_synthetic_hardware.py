from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from metalfleet.lab.synthetic_hardware import (
    MARKER,
    DiskSpec,
    LabHardwareSpec,
    build_root,
    cpu_node_spec,
    gpu_node_spec,
    lab_mac,
)


def _text(root: Path, relative: str) -> str:
    return (root / relative).read_text().strip()


def test_gpu_preset() -> None:
    spec = gpu_node_spec(3)
    assert (spec.sockets, spec.cores_per_socket, spec.threads_per_core) == (2, 56, 2)
    assert (spec.gpus.count, spec.gpus.model, spec.gpus.nvlink) == (
        8,
        "NVIDIA H100 80GB HBM3",
        True,
    )
    assert (spec.ib.ports, spec.ib.rate_gbps) == (8, 400)
    assert spec.disk.name == "nvme0n1" and spec.disk.size_bytes == 3_840_755_982_336
    assert spec == gpu_node_spec(3)  # deterministic


def test_cpu_preset() -> None:
    spec = cpu_node_spec(3)
    assert spec.gpus.count == 0 and spec.ib.ports == 0 and spec.sockets == 2
    assert [(n.speed_mbps, n.link_up) for n in spec.nics] == [(100_000, True)] * 2


def test_presets_have_unique_macs_and_serials() -> None:
    specs = [gpu_node_spec(i) for i in range(300)] + [cpu_node_spec(i) for i in range(300)]
    macs = [nic.mac for spec in specs for nic in spec.nics]
    assert len(macs) == len(set(macs)) == 1200
    for serials in (
        [s.disk.serial for s in specs],
        [s.dmi.product_serial for s in specs],
    ):
        assert len(set(serials)) == len(specs)
    assert all(mac.startswith("02:") for mac in macs)  # locally administered


def test_lab_mac_bounds() -> None:
    assert lab_mac(1, 0, 0) == "02:6d:66:10:00:00"
    assert lab_mac(2, 65535, 15) == "02:6d:66:2f:ff:ff"
    with pytest.raises(ValueError, match="index must be"):
        lab_mac(1, 65536, 0)


def test_build_root_writes_the_tree(tmp_path: Path) -> None:
    root = build_root(tmp_path / "n", gpu_node_spec(1))

    cpuinfo = _text(root, "proc/cpuinfo")
    assert cpuinfo.count("processor\t:") == 224
    assert "model name\t: Intel(R) Xeon(R) Platinum 8480+" in cpuinfo
    assert _text(root, "proc/meminfo").startswith(f"MemTotal:       {2048 * 1024 * 1024} kB")
    assert int(_text(root, "sys/block/nvme0n1/size")) * 512 == 3_840_755_982_336
    assert _text(root, "sys/block/nvme0n1/queue/rotational") == "0"
    assert _text(root, "sys/class/infiniband/mlx5_7/ports/1/state") == "4: ACTIVE"
    assert _text(root, "sys/class/infiniband/mlx5_7/ports/1/rate") == "400 Gb/sec (4X NDR)"
    assert _text(root, "sys/class/net/ens1f0np0/address") == gpu_node_spec(1).nics[0].mac
    assert _text(root, "sys/class/dmi/id/product_serial") == "LABGPU00001"

    classes: dict[tuple[str, str], int] = {}
    for device in (root / "sys/bus/pci/devices").iterdir():
        key = (_text(device, "vendor"), _text(device, "class"))
        classes[key] = classes.get(key, 0) + 1
        assert (device / "driver").is_dir()  # symlink into sys/bus/pci/drivers
    assert classes[("0x10de", "0x030200")] == 8
    assert classes[("0x15b3", "0x020700")] == 8
    assert classes[("0x144d", "0x010802")] == 1
    assert classes[("0x15b3", "0x020000")] == 2

    nvml = json.loads((root / "run/metalfleet/nvml.json").read_text())
    assert nvml["format"] == "metalfleet-nvml/1"
    assert [d["index"] for d in nvml["devices"]] == list(range(8))
    assert nvml["devices"][0]["pci_bus_id"].startswith("00000000:")

    disk = root / "dev/nvme0n1"
    assert disk.stat().st_size == 3_840_755_982_336
    assert disk.stat().st_blocks == 0  # sparse: costs no disk space
    assert json.loads((root / MARKER).read_text())["gpus"]["count"] == 8


def test_build_root_is_idempotent_and_keeps_the_disk(tmp_path: Path) -> None:
    root = build_root(tmp_path / "n", gpu_node_spec(1))
    disk = root / "dev/nvme0n1"
    with disk.open("r+b") as f:
        f.seek(1 << 30)
        f.write(b"deployed image")
    inode = disk.stat().st_ino

    build_root(root, gpu_node_spec(1))
    with disk.open("rb") as f:
        f.seek(1 << 30)
        assert f.read(14) == b"deployed image"
    assert disk.stat().st_ino == inode

    # a changed spec leaves nothing stale behind (no GPUs, no IB any more)
    build_root(root, cpu_node_spec(1))
    assert not (root / "run/metalfleet/nvml.json").exists()
    assert not (root / "sys/class/infiniband").exists()
    assert disk.stat().st_size == cpu_node_spec(1).disk.size_bytes


def test_build_root_refuses_dangerous_targets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="refusing"):
        build_root("/", LabHardwareSpec())
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a lab hardware root"):
        build_root(tmp_path / "home", LabHardwareSpec())
    assert os.listdir(tmp_path / "home") == ["notes.txt"]
    with pytest.raises(ValueError, match="multiple of 512"):
        build_root(tmp_path / "odd", LabHardwareSpec(disk=DiskSpec(size_bytes=1000)))
    assert not (tmp_path / "odd").exists()
