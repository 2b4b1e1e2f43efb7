"""slurm.conf, gres.conf and topology.conf from plain data (no database): Jinja2 templates.

``SlurmNode``/``SlurmSwitch`` describe what the fleet knows; ``SlurmSite`` holds what the
site decides (controller, paths, ports). gather.py builds them from the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from jinja2 import Environment, StrictUndefined
from pydantic import ConfigDict

from metalfleet.scheduling.hostlist import compress, ranges


@dataclass(frozen=True)
class SlurmNode:
    name: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    real_memory_mib: int
    gpus: int = 0
    gpu_indices: tuple[int, ...] = ()
    nvml: bool = False
    features: tuple[str, ...] = ()

    @property
    def cpus(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core


@dataclass(frozen=True)
class SlurmSwitch:
    name: str
    nodes: tuple[str, ...] = ()
    switches: tuple[str, ...] = ()


@dataclass(frozen=True)
class Partition:
    name: str
    nodes: tuple[str, ...]
    default: bool = False
    allow_accounts: tuple[str, ...] = ()
    allow_qos: tuple[str, ...] = ()
    max_time: str = "INFINITE"


@dataclass(frozen=True)
class Qos:
    """A tenant's QoS. QoS live in Slurm's accounting database (slurmdbd), not in slurm.conf:
    :func:`sacctmgr_script` writes the commands that create them."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    name: str
    priority: int = 0
    grp_tres: str | None = None  # the tenant's total, e.g. "gres/gpu=64"
    max_tres_per_user: str | None = None
    max_wall: str | None = None  # e.g. "2-00:00:00"
    max_jobs_per_user: int | None = None


@dataclass(frozen=True)
class PowerSaving:
    """Slurm's power saving: idle nodes are suspended after ``suspend_time_s``, and the
    programs (metalfleet's wrappers) power them off and on through their BMC."""

    suspend_program: str
    resume_program: str
    suspend_time_s: int = 600
    suspend_timeout_s: int = 120
    resume_timeout_s: int = 600
    exclude: tuple[str, ...] = ()


@dataclass
class SlurmSite:
    """Site choices. The defaults suit Debian's packages on a real controller."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid")

    cluster_name: str = "metalfleet"
    controller: str = "slurmctld"
    controller_addr: str | None = None
    slurm_user: str = "slurm"
    slurmctld_port: int = 6817
    slurmd_port: int = 6818
    state_dir: str = "/var/spool/slurmctld"
    spool_dir: str = "/var/spool/slurmd"
    log_dir: str = "/var/log/slurm"
    run_dir: str = "/run"
    gpu_device_prefix: str = "/dev/nvidia"
    autodetect_nvml: bool = True
    # Let slurmd report the configured hardware instead of probing (test rigs, emulation).
    config_overrides: bool = False
    # AllowAccounts=<tenant> on each cluster's partition (needs Slurm accounting).
    tenant_accounts: bool = False
    # AccountingStorageType=accounting_storage/slurmdbd at this host, enforcing QoS/limits.
    accounting_host: str | None = None
    accounting_port: int = 6819
    node_addr: dict[str, str] = field(default_factory=dict)
    node_hostname: dict[str, str] = field(default_factory=dict)
    node_port: dict[str, int] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)


SLURM_CONF = """\
# slurm.conf for cluster {{ site.cluster_name }}, rendered by metalfleet. Do not edit:
# change the fleet and render again.
ClusterName={{ site.cluster_name }}
SlurmctldHost={{ site.controller }}
{%- if site.controller_addr %}({{ site.controller_addr }}){% endif %}
SlurmUser={{ site.slurm_user }}
SlurmctldPort={{ site.slurmctld_port }}
SlurmdPort={{ site.slurmd_port }}
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation={{ site.state_dir }}
SlurmdSpoolDir={{ site.spool_dir }}/%n
SlurmctldPidFile={{ site.run_dir }}/slurmctld.pid
SlurmdPidFile={{ site.run_dir }}/slurmd-%n.pid
SlurmctldLogFile={{ site.log_dir }}/slurmctld.log
SlurmdLogFile={{ site.log_dir }}/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
TopologyPlugin=topology/tree
GresTypes=gpu
{% if site.config_overrides %}SlurmdParameters=config_overrides
{% endif %}
{%- if site.accounting_host %}AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost={{ site.accounting_host }}
AccountingStoragePort={{ site.accounting_port }}
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=gres/gpu
PriorityType=priority/multifactor
PriorityWeightQOS=10000
{% endif %}
{%- if power %}# Power saving: Slurm calls metalfleet to power idle nodes off and back on.
SuspendProgram={{ power.suspend_program }}
ResumeProgram={{ power.resume_program }}
SuspendTime={{ power.suspend_time_s }}
SuspendTimeout={{ power.suspend_timeout_s }}
ResumeTimeout={{ power.resume_timeout_s }}
{% if power.exclude %}SuspendExcNodes={{ hostlist(power.exclude) }}
{% endif %}
{%- endif %}
{% for line in site.extra %}{{ line }}
{% endfor %}
# Nodes: CPUs, sockets, cores, threads and memory from each node's inventory.
{% for node in nodes -%}
{% set name = node.name -%}
NodeName={{ name }}
{%- if name in site.node_hostname %} NodeHostname={{ site.node_hostname[name] }}{% endif %}
{%- if name in site.node_addr %} NodeAddr={{ site.node_addr[name] }}{% endif %}
{%- if name in site.node_port %} Port={{ site.node_port[name] }}{% endif %}
 CPUs={{ node.cpus }} Sockets={{ node.sockets }} CoresPerSocket={{ node.cores_per_socket }}
 ThreadsPerCore={{ node.threads_per_core }} RealMemory={{ node.real_memory_mib }}
{%- if node.gpus %} Gres=gpu:{{ node.gpus }}{% endif %}
{%- if node.features %} Feature={{ node.features | join(",") }}{% endif %} State=UNKNOWN
{% endfor %}
# Partitions: one per cluster (its tenant's accounts and QoS only, when it has a tenant).
{% for part in partitions -%}
PartitionName={{ part.name }} Nodes={{ hostlist(part.nodes) }}
{%- if part.default %} Default=YES{% endif %}
{%- if part.allow_accounts %} AllowAccounts={{ part.allow_accounts | join(",") }}{% endif %}
{%- if part.allow_qos %} AllowQos={{ part.allow_qos | join(",") }}{% endif %}
 MaxTime={{ part.max_time }} State=UP
{% endfor %}
"""

GRES_CONF = """\
# gres.conf rendered by metalfleet: GPUs per node, with their device files.
{% for node in nodes if node.gpus -%}
NodeName={{ node.name }}
{%- if node.nvml and site.autodetect_nvml %} AutoDetect=nvml{% endif %}
 Name=gpu File={{ site.gpu_device_prefix }}[{{ ranges(node.gpu_indices) }}]
{% endfor %}
"""

TOPOLOGY_CONF = """\
# topology.conf rendered by metalfleet from the switch model: leaves with their nodes,
# spines with their leaves.
{% for switch in switches -%}
SwitchName={{ switch.name }}
{%- if switch.nodes %} Nodes={{ hostlist(switch.nodes) }}{% endif %}
{%- if switch.switches %} Switches={{ switch.switches | join(",") }}{% endif %}
{% endfor %}
"""


def _environment() -> Environment:
    env = Environment(undefined=StrictUndefined, keep_trailing_newline=True,
                      trim_blocks=False, lstrip_blocks=False, autoescape=False)
    env.globals["hostlist"] = compress
    env.globals["ranges"] = ranges
    return env


_ENV = _environment()


def _render(template: str, **values: Any) -> str:
    text = _ENV.from_string(template).render(**values)
    # One NodeName/PartitionName per line: join the template's wrapped continuation lines.
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith(" ") and lines:
            lines[-1] += line
        else:
            lines.append(line)
    return "\n".join(lines).rstrip("\n") + "\n"


def slurm_conf(site: SlurmSite, nodes: list[SlurmNode], partitions: list[Partition],
               power: PowerSaving | None = None) -> str:
    return _render(SLURM_CONF, site=site, nodes=nodes, partitions=partitions, power=power)


def gres_conf(site: SlurmSite, nodes: list[SlurmNode]) -> str:
    return _render(GRES_CONF, site=site, nodes=nodes)


def topology_conf(switches: list[SlurmSwitch]) -> str:
    return _render(TOPOLOGY_CONF, switches=switches)
