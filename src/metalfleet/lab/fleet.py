"""The lab fleet: racks, switches, networks, classes and emulated servers in the database.

Each lab server has a Redfish BMC in the lab's emulator and a synthetic hardware root on
disk (fake sysfs/procfs/NVML and a sparse file as its NVMe), so the production Redfish
driver and the real agent code run against it. Building is idempotent: a restart keeps the
lab as it was and only adds what is missing.
"""

from __future__ import annotations

import math
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.db import models as m
from metalfleet.inventory import nodes, resources
from metalfleet.inventory import schemas as s
from metalfleet.inventory.lab_shortcuts import LabGate
from metalfleet.lab.bmc_emulator import LabBmcEmulator, LabNic, LabSystem
from metalfleet.lab.synthetic_hardware import (
    LabHardwareSpec,
    build_root,
    cpu_node_spec,
    gpu_node_spec,
)
from metalfleet.secrets import CredentialCipher

LAB_LABEL = "metalfleet.io/lab"
NODES_PER_RACK = 4
GPU_CLASS = "gpu-h100-8x"
CPU_CLASS = "cpu-epyc-2s"
SITE = "lab"
LAB_NAMESPACE = uuid.UUID("6f1d7c1e-9a57-4c35-b0a4-5b1f0c1d1ab0")


@dataclass(frozen=True)
class LabNode:
    index: int
    name: str
    spec: LabHardwareSpec
    node_class: str
    rack: str
    u_position: int
    u_size: int

    @property
    def system_id(self) -> str:
        return str(uuid.uuid5(LAB_NAMESPACE, self.name))


def rack_name(index: int) -> str:
    return f"lab-rack-{index + 1}"


def layout(count: int) -> list[LabNode]:
    """Mostly GPU nodes, every fourth a CPU node, four per rack, at least two racks."""
    planned = []
    gpu_seen = cpu_seen = 0
    for index in range(count):
        rack = index // NODES_PER_RACK if count > NODES_PER_RACK else index % 2
        slot = index % NODES_PER_RACK if count > NODES_PER_RACK else index // 2
        if index % 4 == 3:
            cpu_seen += 1
            name, spec, klass, size = f"lab-cpu-{cpu_seen:02d}", cpu_node_spec(index), CPU_CLASS, 1
        else:
            gpu_seen += 1
            name, spec, klass, size = f"lab-gpu-{gpu_seen:02d}", gpu_node_spec(index), GPU_CLASS, 8
        planned.append(LabNode(index, name, spec, klass, rack_name(rack), 2 + slot * 8, size))
    return planned


def rack_count(count: int) -> int:
    return max(2, math.ceil(count / NODES_PER_RACK))


def _ensure(session: Session, plural: str, body: dict[str, Any]) -> None:
    kind = resources.KINDS[plural]
    model: Any = kind.model
    if session.scalar(select(model.id).where(model.name == body["name"])) is None:
        resources.create(session, kind, kind.create_schema.model_validate(body))


def ensure_topology(session: Session, count: int) -> None:
    _ensure(session, "sites", {"name": SITE, "description": "emulated lab fleet"})
    racks = rack_count(count)
    for r in range(racks):
        _ensure(session, "racks", {"name": rack_name(r), "site": SITE, "u_height": 42,
                                   "power_budget_w": 40000})
        _ensure(session, "switches", {"name": f"lab-ib-leaf-{r + 1}", "rack": rack_name(r),
                                      "role": "leaf", "fabric": "infiniband", "port_count": 64,
                                      "model": "NVIDIA QM9700", "u_position": 42})
        _ensure(session, "switches", {"name": f"lab-eth-leaf-{r + 1}", "rack": rack_name(r),
                                      "role": "leaf", "fabric": "ethernet", "port_count": 64,
                                      "model": "NVIDIA SN4600C", "u_position": 41})
    _ensure(session, "switches", {"name": "lab-ib-spine-1", "rack": rack_name(0), "role": "spine",
                                  "fabric": "infiniband", "port_count": 64,
                                  "model": "NVIDIA QM9700", "u_position": 40})
    for r in range(racks):
        _ensure(session, "switch-links", {
            "name": f"lab-ib-leaf-{r + 1}-up", "switch": f"lab-ib-leaf-{r + 1}", "port": "p64",
            "peer_switch": "lab-ib-spine-1", "peer_port": f"p{r + 1}"})
    networks = [
        {"name": "lab-bmc", "role": "bmc", "vlan_id": 10, "cidr": "10.10.0.0/22",
         "gateway": "10.10.0.1"},
        {"name": "lab-provisioning", "role": "provisioning", "vlan_id": 20, "cidr": "10.20.0.0/22",
         "gateway": "10.20.0.1", "dhcp_start": "10.20.2.0", "dhcp_end": "10.20.3.254"},
        {"name": "lab-data", "role": "data", "vlan_id": 30, "cidr": "10.30.0.0/20",
         "gateway": "10.30.0.1", "mtu": 9000},
        {"name": "lab-ib", "role": "ib", "cidr": "10.40.0.0/20", "mtu": 4092},
    ]
    for network in networks:
        _ensure(session, "networks", {**network, "site": SITE})
    _ensure(session, "node-classes", {
        "name": GPU_CLASS, "description": "HGX H100: 8x H100 80GB NVLink, 8x 400G NDR IB",
        "cpu_sockets": 2, "cpu_cores": 112, "memory_gib": 2048, "gpu_model":
        "NVIDIA H100 80GB HBM3", "gpu_count": 8, "gpu_memory_gib": 80, "ib_ports": 8,
        "ib_rate_gbps": 400, "disk_gib": 3577, "power_w": 10200})
    _ensure(session, "node-classes", {
        "name": CPU_CLASS, "description": "2x EPYC 9554, 768 GiB, 2x 100G Ethernet",
        "cpu_sockets": 2, "cpu_cores": 128, "memory_gib": 768, "disk_gib": 1788,
        "power_w": 900})
    _ensure(session, "tenants", {"name": "demo", "description": "the lab's example tenant"})


def lab_system(plan: LabNode, password: str) -> LabSystem:
    spec = plan.spec
    processors: list[dict[str, Any]] = [
        {"ProcessorType": "CPU", "Model": spec.cpu_model, "TotalCores": spec.cores_per_socket,
         "TotalThreads": spec.cores_per_socket * spec.threads_per_core,
         "Manufacturer": "AMD" if "AMD" in spec.cpu_model else "Intel(R) Corporation",
         "ProcessorArchitecture": "x86", "InstructionSet": "x86-64"}
        for _ in range(spec.sockets)
    ]
    processors += [{"ProcessorType": "GPU", "Manufacturer": "NVIDIA", "Model": spec.gpus.model}
                   for _ in range(spec.gpus.count)]
    dimm_gib = 64
    dimms = [{"CapacityMiB": dimm_gib * 1024, "MemoryDeviceType": "DDR5",
              "OperatingSpeedMhz": 4800} for _ in range(spec.memory_gib // dimm_gib)]
    return LabSystem(
        id=plan.system_id, name=plan.name, manufacturer=spec.dmi.sys_vendor,
        model=spec.dmi.product_name, serial=spec.dmi.product_serial,
        bios_version=spec.dmi.bios_version, processors=processors,
        memory_gib=spec.memory_gib, dimms=dimms,
        nics=[LabNic(mac=nic.mac, speed_mbps=nic.speed_mbps) for nic in spec.nics],
        username="admin", password=password,
    )


def ensure_nodes(
    session: Session, count: int, emulator: LabBmcEmulator, system_address: Any,
    roots_dir: Path, cipher: CredentialCipher,
) -> list[str]:
    """Create what is missing; returns the names of nodes created now.

    The lab's nodes live under ``roots_dir``'s parent (``<data-dir>/lab``): the lab hardware
    type is registered for that folder, and only paths inside it are accepted."""
    from metalfleet.lab.plugin import register_hardware_type

    gate = LabGate(register_hardware_type(roots_dir.parent), admin=True)
    created = []
    for plan in layout(count):
        system = emulator.get(plan.system_id)
        if system is None:
            system = emulator.add_system(lab_system(plan, secrets.token_urlsafe(12)))
        root = build_root(roots_dir / plan.name, plan.spec)
        address = system_address(plan.system_id)
        existing = session.scalar(select(m.Node).where(m.Node.name == plan.name))
        if existing is not None:
            if existing.bmc_address != address:  # the emulator moved to another port
                existing.bmc_address = address
            continue
        rack_index = int(plan.rack.rsplit("-", 1)[1])
        body = s.NodeIn.model_validate({
            "name": plan.name,
            "rack": plan.rack,
            "u_position": plan.u_position,
            "u_size": plan.u_size,
            "node_class": plan.node_class,
            "bmc": {"driver": "redfish", "address": address, "username": system.username,
                    "password": system.password},
            "hardware_type": "lab",
            "driver_info": {"hardware_root": str(root), "disk": f"dev/{plan.spec.disk.name}"},
            "ports": [
                {"name": nic.name, "mac": nic.mac, "speed_gbps": nic.speed_mbps // 1000,
                 "network": "lab-provisioning" if port == 0 else "lab-data",
                 "switch": f"lab-eth-leaf-{rack_index}",
                 "switch_port": f"swp{plan.index % NODES_PER_RACK * 2 + port + 1}",
                 "pxe": port == 0}
                for port, nic in enumerate(plan.spec.nics)
            ],
            "labels": {LAB_LABEL: "true", "rack": plan.rack,
                       "gpu": str(plan.spec.gpus.count)},
        })
        nodes.enroll(session, body, cipher, actor="lab", lab=gate)
        created.append(plan.name)
    return created
