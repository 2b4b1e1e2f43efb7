"""slurm.conf, gres.conf and topology.conf from plain data."""

from __future__ import annotations

import subprocess
from pathlib import Path

from metalfleet.scheduling.slurm.accounting import sacctmgr_script
from metalfleet.scheduling.slurm.config import (
    Partition,
    PowerSaving,
    Qos,
    SlurmNode,
    SlurmSite,
    SlurmSwitch,
    gres_conf,
    slurm_conf,
    topology_conf,
)
from metalfleet.scheduling.slurm.power import wrapper

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


def test_accounting_and_tenant_partition_lines() -> None:
    site = SlurmSite(accounting_host="dbd")
    part = Partition("acme-hpc", ("g01",), allow_accounts=("acme",), allow_qos=("acme",),
                     max_time="2-00:00:00")
    lines = slurm_conf(site, [GPU], [part]).splitlines()
    assert "AccountingStorageType=accounting_storage/slurmdbd" in lines
    assert "AccountingStorageHost=dbd" in lines and "AccountingStoragePort=6819" in lines
    assert "AccountingStorageEnforce=associations,limits,qos" in lines
    assert ("PartitionName=acme-hpc Nodes=g01 AllowAccounts=acme AllowQos=acme "
            "MaxTime=2-00:00:00 State=UP") in lines
    assert not any(line.startswith("Accounting") for line in
                   slurm_conf(SlurmSite(), [GPU], [part]).splitlines())


def test_power_saving_lines_only_when_asked() -> None:
    power = PowerSaving("/etc/slurm/metalfleet-suspend", "/etc/slurm/metalfleet-resume",
                        suspend_time_s=300, exclude=("g01", "g02", "g03"))
    lines = slurm_conf(SlurmSite(), [GPU], [], power).splitlines()
    assert "SuspendProgram=/etc/slurm/metalfleet-suspend" in lines
    assert "ResumeProgram=/etc/slurm/metalfleet-resume" in lines
    assert {"SuspendTime=300", "SuspendTimeout=120", "ResumeTimeout=600",
            "SuspendExcNodes=g[01-03]"} <= set(lines)
    assert not any(line.startswith("Suspend") for line in
                   slurm_conf(SlurmSite(), [GPU], []).splitlines())


def test_sacctmgr_script_creates_then_sets_every_limit() -> None:
    qos = Qos("acme", priority=10, grp_tres="gres/gpu=64", max_wall="1-00:00:00")
    lines = sacctmgr_script("train", "acme", qos).splitlines()
    assert "sacctmgr -i add qos acme >/dev/null 2>&1 || true" in lines
    assert ("sacctmgr -i modify qos where name=acme set Priority=10 GrpTRES=gres/gpu=64 "
            "MaxWall=1-00:00:00 MaxJobsPerUser=-1") in lines
    assert ("sacctmgr -i modify account where name=acme cluster=train set QOS=acme "
            "DefaultQOS=acme") in lines
    # Names are shell-quoted: a tenant name cannot inject a command.
    assert "'a;b'" in sacctmgr_script("train", "a;b", qos)


def test_power_wrapper_reads_the_token_at_run_time(tmp_path: Path) -> None:
    text = wrapper("resume", "hpc", "http://api:8080", "/etc/slurm/mf token",
                   ["/opt/mf/bin/metalfleet"])
    assert "cat '/etc/slurm/mf token'" in text and "s3cret" not in text
    assert text.rstrip().endswith('exec /opt/mf/bin/metalfleet slurm resume --cluster hpc "$1"')
    token = tmp_path / "token"
    token.write_text("s3cret")
    echo = ["sh", "-c", 'echo "$METALFLEET_TOKEN $METALFLEET_URL $*"', "metalfleet"]
    script = tmp_path / "resume"
    script.write_text(wrapper("resume", "hpc", "http://api:8080", str(token), echo))
    script.chmod(0o755)
    run = subprocess.run([str(script), "n[1-2]"], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "s3cret http://api:8080 slurm resume --cluster hpc n[1-2]"
