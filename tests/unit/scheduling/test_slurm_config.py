"""slurm.conf, gres.conf and topology.conf from plain data."""

from __future__ import annotations

from metalfleet.scheduling.slurm.config import (
    Partition,
    SlurmNode,
    SlurmSite,
    SlurmSwitch,
    gres_conf,
    slurm_conf,
    topology_conf,
)

GPU = SlurmNode("g01", sockets=2, cores_per_socket=56, threads_per_core=2,
                real_memory_mib=2_097_152, gpus=8, gpu_indices=tuple(range(8)), nvml=True)
CPU = SlurmNode("c01", sockets=2, cores_per_socket=64, threads_per_core=2,
                real_memory_mib=786_432)


def test_slurm_conf_has_one_line_per_node_with_hardware_and_gres() -> None:
    site = SlurmSite(cluster_name="train", controller="ctl", controller_addr="10.0.0.1",
                     node_addr={"g01": "10.0.0.11"}, node_port={"g01": 7001})
    text = slurm_conf(site, [GPU, CPU], [Partition("train", ("g01", "c01"), default=True)])
    lines = text.splitlines()
    assert "ClusterName=train" in lines and "SlurmctldHost=ctl(10.0.0.1)" in lines
    assert ("NodeName=g01 NodeAddr=10.0.0.11 Port=7001 CPUs=224 Sockets=2 CoresPerSocket=56 "
            "ThreadsPerCore=2 RealMemory=2097152 Gres=gpu:8 State=UNKNOWN") in lines
    assert ("NodeName=c01 CPUs=256 Sockets=2 CoresPerSocket=64 ThreadsPerCore=2 "
            "RealMemory=786432 State=UNKNOWN") in lines
    assert "PartitionName=train Nodes=c01,g01 Default=YES MaxTime=INFINITE State=UP" in lines
    assert "TopologyPlugin=topology/tree" in lines and "GresTypes=gpu" in lines


def test_gres_conf_lists_device_files_and_autodetects_where_nvml_is() -> None:
    text = gres_conf(SlurmSite(), [GPU, CPU])
    assert text.splitlines()[1:] == ["NodeName=g01 AutoDetect=nvml Name=gpu File=/dev/nvidia[0-7]"]
    plain = gres_conf(SlurmSite(autodetect_nvml=False, gpu_device_prefix="/tmp/d/gpu"), [GPU])
    assert "NodeName=g01 Name=gpu File=/tmp/d/gpu[0-7]" in plain.splitlines()


def test_topology_conf_compresses_node_lists() -> None:
    text = topology_conf([SlurmSwitch("leaf-1", nodes=("n01", "n02", "n03")),
                          SlurmSwitch("spine", switches=("leaf-1", "leaf-2"))])
    assert text.splitlines()[2:] == ["SwitchName=leaf-1 Nodes=n[01-03]",
                                     "SwitchName=spine Switches=leaf-1,leaf-2"]
