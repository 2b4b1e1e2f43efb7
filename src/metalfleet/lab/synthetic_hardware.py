"""Synthetic hardware roots: fake procfs/sysfs trees and a sparse disk for one lab node.

The agent (inventory, wipe, image write, burn-in) runs its real code against such a root,
so the lab exercises the same parsing and disk paths as a physical node. The disk is a
sparse file (``dev/<name>``) of the full advertised size: a 3.84 TB disk costs only the
blocks actually written.

Layout written by :func:`build_root` (``<root>/``)::

    .metalfleet-lab-root                  marker + the spec as JSON (build_root refuses
                                          to rebuild a non-empty directory without it)
    proc/cpuinfo, proc/meminfo
    sys/block/<disk>/{size,queue/rotational,queue/logical_block_size,device/{model,serial}}
    sys/bus/pci/devices/<addr>/{vendor,device,class,uevent,driver -> ../../drivers/<drv>}
    sys/class/net/<if>/{address,operstate,speed,mtu,device -> PCI function}
    sys/class/infiniband/mlx5_<n>/ports/1/{state,phys_state,rate,link_layer}
    sys/class/dmi/id/{sys_vendor,product_name,product_serial,bios_version,board_name,...}
    sys/bus/pci/devices/<addr>/{current,max}_link_{width,speed}   PCIe link (pcie-width check)
    sys/devices/system/edac/mc/mc<n>/{mc_name,ue_count,ce_count}    one memory controller a socket
    run/metalfleet/nvml.json              fake NVML answers (format: metalfleet.agent.inventory;
                                          ECC/row-remap fields: metalfleet.agent.health)
    run/metalfleet/smart/<disk>.json      what ``smartctl -j -H -A /dev/<disk>`` would print
    var/log/kern.log                      the kernel log (boot banner; lab faults add NVRM Xid)
    dev/<disk>                            sparse file, kept across rebuilds
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = ".metalfleet-lab-root"
GENERATED_DIRS = ("proc", "sys", "run/metalfleet", "var/log")
MAC_PREFIX = "02:6d:66"  # locally administered ("mf"): never collides with real hardware
KIND_GPU, KIND_CPU = 0x1, 0x2

_INTEL_FLAG_TEXT = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx pdpe1gb rdtscp lm constant_tsc pni pclmulqdq vmx ssse3 fma cx16 "
    "sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand avx2 bmi1 bmi2 avx512f "
    "avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 avx512_fp16 sha_ni amx_bf16 "
    "amx_tile amx_int8"
)
_AMD_FLAG_TEXT = (
    "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr "
    "sse sse2 ht syscall nx mmxext pdpe1gb rdtscp lm constant_tsc pni pclmulqdq svm ssse3 fma "
    "cx16 sse4_1 sse4_2 x2apic movbe popcnt aes xsave avx f16c rdrand avx2 bmi1 bmi2 avx512f "
    "avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_bf16 sha_ni"
)
INTEL_FLAGS = tuple(_INTEL_FLAG_TEXT.split())
AMD_FLAGS = tuple(_AMD_FLAG_TEXT.split())

# NVML's ECC and row-remapping answers for a healthy GPU (field meanings: agent/health.py)
HEALTHY_GPU_ECC: dict[str, Any] = {
    "ecc_uncorrected_volatile": 0, "ecc_corrected_volatile": 0, "retired_pages_dbe": 0,
    "retired_pages_sbe": 0, "retired_pages_pending": False, "remapped_rows_correctable": 0,
    "remapped_rows_uncorrectable": 0, "remap_pending": False, "remap_failure": False,
}

# (vendor, device, class) of the PCI functions the lab invents
PCI_H100_SXM = (0x10DE, 0x2330, 0x030200)
PCI_NVSWITCH = (0x10DE, 0x22A3, 0x068000)
PCI_CONNECTX7_IB = (0x15B3, 0x1021, 0x020700)
PCI_NVME = (0x144D, 0xA80A, 0x010802)
PCI_NIC_BY_DRIVER = {
    "mlx5_core": (0x15B3, 0x101D, 0x020000),  # ConnectX-6 Dx
    "ice": (0x8086, 0x159B, 0x020000),  # E810
    "bnxt_en": (0x14E4, 0x1750, 0x020000),  # BCM57508
}
IB_RATE_TEXT = {100: "100 Gb/sec (4X EDR)", 200: "200 Gb/sec (4X HDR)", 400: "400 Gb/sec (4X NDR)"}


@dataclass(frozen=True)
class GpuSpec:
    count: int = 0
    model: str = "NVIDIA H100 80GB HBM3"
    memory_mib: int = 81559
    nvlink: bool = True


@dataclass(frozen=True)
class IbSpec:
    ports: int = 0
    rate_gbps: int = 400


@dataclass(frozen=True)
class NicSpec:
    name: str
    mac: str
    speed_mbps: int
    driver: str = "mlx5_core"
    link_up: bool = True


@dataclass(frozen=True)
class DiskSpec:
    name: str = "nvme0n1"
    size_bytes: int = 3_840_755_982_336  # 3.84 TB, 7 501 476 528 sectors
    model: str = "SAMSUNG MZQL23T8HCLS-00A07"
    serial: str = "S64HNE0T000000"


@dataclass(frozen=True)
class DmiSpec:
    sys_vendor: str = "Supermicro"
    product_name: str = "SYS-821GE-TNHR"
    product_serial: str = "LAB00000"
    bios_version: str = "2.1"
    board_name: str = "X13DEG-OAD"


@dataclass(frozen=True)
class LabHardwareSpec:
    cpu_model: str = "Intel(R) Xeon(R) Platinum 8480+"
    sockets: int = 2
    cores_per_socket: int = 56
    threads_per_core: int = 2
    memory_gib: int = 2048
    gpus: GpuSpec = field(default_factory=GpuSpec)
    ib: IbSpec = field(default_factory=IbSpec)
    nics: tuple[NicSpec, ...] = ()
    disk: DiskSpec = field(default_factory=DiskSpec)
    dmi: DmiSpec = field(default_factory=DmiSpec)
    cpu_flags: tuple[str, ...] = INTEL_FLAGS
    gpu_driver_version: str = "550.90.07"
    cuda_version: str = "12.4"

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket

    @property
    def threads(self) -> int:
        return self.cores * self.threads_per_core

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# --- presets ------------------------------------------------------------------------------


def lab_mac(kind: int, index: int, port: int) -> str:
    """A deterministic locally-administered MAC, unique per (node kind, index, port)."""
    if not 0 <= index < 0x10000 or not 0 <= port < 0x10:
        raise ValueError(f"lab node index must be 0..65535 and port 0..15, got {index}/{port}")
    value = (kind << 20) | (index << 4) | port
    tail = [(value >> shift) & 0xFF for shift in (16, 8, 0)]
    return MAC_PREFIX + "".join(f":{octet:02x}" for octet in tail)


def _ethernet(kind: int, index: int, count: int, speed_mbps: int) -> tuple[NicSpec, ...]:
    return tuple(
        NicSpec(f"ens1f{port}np{port}", lab_mac(kind, index, port), speed_mbps)
        for port in range(count)
    )


def gpu_node_spec(index: int) -> LabHardwareSpec:
    """An HGX H100 node: 2x 56-core Xeon, 2 TiB, 8x H100 80GB with NVLink, 8x 400G NDR IB."""
    return LabHardwareSpec(
        gpus=GpuSpec(count=8, model="NVIDIA H100 80GB HBM3", memory_mib=81559, nvlink=True),
        ib=IbSpec(ports=8, rate_gbps=400),
        nics=_ethernet(KIND_GPU, index, 2, 100_000),
        disk=DiskSpec(serial=f"S64HNG0T{index:06d}"),
        dmi=DmiSpec(product_serial=f"LABGPU{index:05d}"),
    )


def cpu_node_spec(index: int) -> LabHardwareSpec:
    """A CPU node: 2x 64-core EPYC, 768 GiB, no GPU or IB, 2x 100G Ethernet, 1.92 TB NVMe."""
    return LabHardwareSpec(
        cpu_model="AMD EPYC 9554 64-Core Processor",
        cores_per_socket=64,
        memory_gib=768,
        nics=_ethernet(KIND_CPU, index, 2, 100_000),
        disk=DiskSpec(
            size_bytes=1_920_383_410_176,
            model="SAMSUNG MZQL21T9HCJR-00A07",
            serial=f"S64HNC0T{index:06d}",
        ),
        dmi=DmiSpec(
            sys_vendor="Dell Inc.",
            product_name="PowerEdge R6625",
            product_serial=f"LABCPU{index:05d}",
            bios_version="1.6.6",
            board_name="0HMNW5",
        ),
        cpu_flags=AMD_FLAGS,
    )


# --- tree writer --------------------------------------------------------------------------


class _Tree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.next_bus = 0x18

    def write(self, relative: str, content: str | int) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{content}\n", encoding="utf-8")

    def link(self, relative: str, target: str) -> None:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)

    def new_bus(self) -> int:
        if self.next_bus > 0xFF:
            raise ValueError("lab spec has more PCI devices than one PCI segment holds")
        self.next_bus += 1
        return self.next_bus - 1

    def pci(
        self, ids: tuple[int, int, int], driver: str, bus: int | None = None, function: int = 0,
        lanes: int = 16,
    ) -> str:
        address = f"0000:{self.new_bus() if bus is None else bus:02x}:00.{function}"
        base = f"sys/bus/pci/devices/{address}"
        vendor, device, pci_class = ids
        self.write(f"{base}/vendor", f"0x{vendor:04x}")
        self.write(f"{base}/device", f"0x{device:04x}")
        self.write(f"{base}/class", f"0x{pci_class:06x}")
        self.write(f"{base}/uevent", f"DRIVER={driver}\nPCI_SLOT_NAME={address}")
        for kind in ("current", "max"):  # Gen5 links at full width; lab faults may narrow one
            self.write(f"{base}/{kind}_link_width", lanes)
            self.write(f"{base}/{kind}_link_speed", "32.0 GT/s PCIe")
        (self.root / f"sys/bus/pci/drivers/{driver}").mkdir(parents=True, exist_ok=True)
        self.link(f"{base}/driver", f"../../drivers/{driver}")
        return address


def _cpuinfo(spec: LabHardwareSpec) -> str:
    blocks = []
    flags = " ".join(spec.cpu_flags)
    siblings = spec.cores_per_socket * spec.threads_per_core
    processor = 0
    for thread in range(spec.threads_per_core):
        for socket in range(spec.sockets):
            for core in range(spec.cores_per_socket):
                apic = (socket * spec.cores_per_socket + core) * spec.threads_per_core + thread
                blocks.append(
                    f"processor\t: {processor}\nvendor_id\t: "
                    f"{'AuthenticAMD' if 'AMD' in spec.cpu_model else 'GenuineIntel'}\n"
                    f"model name\t: {spec.cpu_model}\nphysical id\t: {socket}\n"
                    f"siblings\t: {siblings}\ncore id\t\t: {core}\n"
                    f"cpu cores\t: {spec.cores_per_socket}\napicid\t\t: {apic}\n"
                    f"flags\t\t: {flags}\n"
                )
                processor += 1
    return "\n".join(blocks)


def _meminfo(spec: LabHardwareSpec) -> str:
    total_kb = spec.memory_gib * 1024 * 1024
    return (
        f"MemTotal:       {total_kb} kB\nMemFree:        {total_kb - 4194304} kB\n"
        f"MemAvailable:   {total_kb - 2097152} kB\nHugePages_Total:       0\n"
        "Hugepagesize:       2048 kB"
    )


def _write_devices(tree: _Tree, spec: LabHardwareSpec) -> None:
    nvml_devices = []
    for i in range(max(spec.gpus.count, spec.ib.ports)):
        if i < spec.gpus.count:
            address = tree.pci(PCI_H100_SXM, "nvidia")
            seed = f"metalfleet-lab:{spec.dmi.product_serial}:gpu{i}"
            nvml_devices.append(
                {
                    "index": i,
                    "name": spec.gpus.model,
                    "uuid": f"GPU-{uuid.uuid5(uuid.NAMESPACE_URL, seed)}",
                    "memory_total_mib": spec.gpus.memory_mib,
                    "pci_bus_id": f"0000{address}".upper(),
                    "nvlink_active_links": 18 if spec.gpus.nvlink else 0,
                    **HEALTHY_GPU_ECC,
                    "clocks_throttle_reasons": 0x1,  # "GPU idle", as an idle H200 says
                }
            )
        if i < spec.ib.ports:
            address = tree.pci(PCI_CONNECTX7_IB, "mlx5_core")
            ib = f"sys/class/infiniband/mlx5_{i}"
            tree.link(f"{ib}/device", f"../../../bus/pci/devices/{address}")
            rate = IB_RATE_TEXT.get(spec.ib.rate_gbps, f"{spec.ib.rate_gbps} Gb/sec (4X)")
            tree.write(f"{ib}/ports/1/state", "4: ACTIVE")
            tree.write(f"{ib}/ports/1/phys_state", "5: LinkUp")
            tree.write(f"{ib}/ports/1/rate", rate)
            tree.write(f"{ib}/ports/1/link_layer", "InfiniBand")
    if spec.gpus.count and spec.gpus.nvlink:
        for _ in range(4):
            tree.pci(PCI_NVSWITCH, "nvidia")  # NVSwitches: NVIDIA vendor, but not GPUs
    if spec.gpus.count:
        tree.write(
            "run/metalfleet/nvml.json",
            json.dumps(
                {
                    "format": "metalfleet-nvml/1",
                    "driver_version": spec.gpu_driver_version,
                    "cuda_version": spec.cuda_version,
                    "devices": nvml_devices,
                },
                indent=2,
            ),
        )
    tree.pci(PCI_NVME, "nvme", lanes=4)
    nic_bus = 0
    for port, nic in enumerate(spec.nics):
        if port % 8 == 0:
            nic_bus = tree.new_bus()  # up to 8 functions per NIC card
        ids = PCI_NIC_BY_DRIVER.get(nic.driver, PCI_NIC_BY_DRIVER["mlx5_core"])
        address = tree.pci(ids, nic.driver, bus=nic_bus, function=port % 8)
        net = f"sys/class/net/{nic.name}"
        tree.write(f"{net}/address", nic.mac.lower())
        tree.write(f"{net}/operstate", "up" if nic.link_up else "down")
        tree.write(f"{net}/speed", nic.speed_mbps if nic.link_up else -1)
        tree.write(f"{net}/mtu", 9000)
        tree.link(f"{net}/device", f"../../../bus/pci/devices/{address}")
    tree.write("sys/class/net/lo/address", "00:00:00:00:00:00")
    tree.write("sys/class/net/lo/operstate", "unknown")


def smart_report(disk: DiskSpec) -> dict[str, Any]:
    """A healthy NVMe disk as ``smartctl -j -H -A`` reports it (the fields the checks read)."""
    return {
        "device": {"name": f"/dev/{disk.name}", "type": "nvme", "protocol": "NVMe"},
        "model_name": disk.model, "serial_number": disk.serial,
        "smart_status": {"passed": True, "nvme": {"value": 0}},
        "nvme_smart_health_information_log": {
            "critical_warning": 0, "temperature": 38, "available_spare": 100,
            "available_spare_threshold": 10, "percentage_used": 1, "media_errors": 0,
            "num_err_log_entries": 0},
    }


def _write_health_sources(tree: _Tree, spec: LabHardwareSpec) -> None:
    """What the agent's in-band health checks read: SMART, EDAC counters, the kernel log."""
    tree.write(f"run/metalfleet/smart/{spec.disk.name}.json",
               json.dumps(smart_report(spec.disk), indent=2))
    for socket in range(spec.sockets):
        mc = f"sys/devices/system/edac/mc/mc{socket}"
        tree.write(f"{mc}/mc_name", "I10NM_imc" if "Intel" in spec.cpu_model else "F19h_M10h")
        tree.write(f"{mc}/ue_count", 0)
        tree.write(f"{mc}/ce_count", 0)
    lines = ["kernel: [    0.000000] Linux version 5.15.0-lab (metalfleet lab) #1 SMP"]
    if spec.gpus.count:
        lines.append(f"kernel: [    9.512000] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  "
                     f"{spec.gpu_driver_version}")
    tree.write("var/log/kern.log", "\n".join(lines))


def _write_disk(root: Path, tree: _Tree, disk: DiskSpec) -> None:
    block = f"sys/block/{disk.name}"
    tree.write(f"{block}/size", disk.size_bytes // 512)
    tree.write(f"{block}/queue/rotational", 0)
    tree.write(f"{block}/queue/logical_block_size", 512)
    tree.write(f"{block}/device/model", disk.model)
    tree.write(f"{block}/device/serial", disk.serial)
    image = root / "dev" / disk.name
    image.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(image, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_size != disk.size_bytes:
            os.ftruncate(fd, disk.size_bytes)  # sparse: no blocks allocated
    finally:
        os.close(fd)


def build_root(path: Path | str, spec: LabHardwareSpec) -> Path:
    """Write (or rewrite) the synthetic tree for ``spec`` under ``path``; return the path.

    Idempotent: the generated ``proc``/``sys``/``run/metalfleet`` trees are rebuilt, the
    disk file is kept (only resized if the spec's size changed).
    """
    root = Path(path)
    if spec.disk.size_bytes <= 0 or spec.disk.size_bytes % 512:
        raise ValueError(f"disk size {spec.disk.size_bytes} is not a positive multiple of 512")
    if root.resolve() == Path("/"):
        raise ValueError("refusing to build a synthetic hardware root at /")
    if root.exists() and any(root.iterdir()) and not (root / MARKER).exists():
        raise ValueError(f"{root} is not empty and is not a lab hardware root; choose another")
    root.mkdir(parents=True, exist_ok=True)
    for generated in GENERATED_DIRS:
        shutil.rmtree(root / generated, ignore_errors=True)
    (root / MARKER).write_text(json.dumps(spec.to_dict(), indent=2), encoding="utf-8")
    tree = _Tree(root)
    tree.write("proc/cpuinfo", _cpuinfo(spec))
    tree.write("proc/meminfo", _meminfo(spec))
    _write_devices(tree, spec)
    _write_disk(root, tree, spec.disk)
    _write_health_sources(tree, spec)
    dmi = "sys/class/dmi/id"
    for key, value in dataclasses.asdict(spec.dmi).items():
        tree.write(f"{dmi}/{key}", value)
    tree.write(f"{dmi}/board_vendor", spec.dmi.sys_vendor)
    tree.write(f"{dmi}/product_uuid", str(uuid.uuid5(uuid.NAMESPACE_URL, spec.dmi.product_serial)))
    return root
