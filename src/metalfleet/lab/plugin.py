"""The lab as a plug-in: what `metalfleet up --lab N` adds to a process, and nothing else does.

Enabling it, before the API app is built, (1) opens the lab's shortcuts for this process only
and only inside ``<data-dir>/lab`` (``AppContext.lab``: the ``lab`` hardware type, synthetic
hardware roots, ``file://`` images; see inventory/lab_shortcuts.py), (2) registers the ``lab``
hardware type, confined to that folder, and (3) adds the lab's routes (fault injection).
Production processes never import this package: a lab node there fails its steps with
"runs only in a metalfleet started with --lab", and the API refuses to create one.
"""

from __future__ import annotations

from pathlib import Path

from metalfleet.drivers import agent_local, registry
from metalfleet.drivers.base import HardwareType
from metalfleet.network import switch_access
from metalfleet.runtime import AppContext, LabAllowance

HARDWARE_TYPE = "lab"


def lab_folder(data_dir: Path) -> Path:
    return data_dir / "lab"


def hardware_type(allowed: Path) -> HardwareType:
    """Redfish out of band (the lab's emulated BMCs), the agent's code in-process, confined
    to ``allowed``."""
    from metalfleet.drivers.redfish.boot import RedfishBoot
    from metalfleet.drivers.redfish.management import RedfishManagement
    from metalfleet.drivers.redfish.power import RedfishPower

    return HardwareType(
        name=HARDWARE_TYPE, power=RedfishPower(), boot=RedfishBoot(),
        management=RedfishManagement(), inspect=agent_local.AgentLocalInspect(allowed),
        burn_in=agent_local.AgentLocalBurnIn(allowed), deploy=agent_local.AgentLocalDeploy(allowed),
        clean=agent_local.AgentLocalClean(allowed),
    )


def register_hardware_type(folder: Path) -> LabAllowance:
    """The lab hardware type in this process, for nodes under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    allowance = LabAllowance(root=folder.resolve())
    registry.register(HARDWARE_TYPE, lambda: hardware_type(allowance.root))
    return allowance


def enable(context: AppContext) -> LabAllowance:
    """Make this process a lab process: call before create_app (the routes join the app)."""
    from metalfleet.lab import routes

    allowance = register_hardware_type(lab_folder(context.settings.data_dir))
    context.lab = allowance
    switch_access.allow_local_switches()  # the lab's fabric is a namespace on this host
    if routes.router not in context.routers:
        context.routers.append(routes.router)
    return allowance
