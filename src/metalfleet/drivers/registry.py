"""Hardware types by name: which implementation serves each interface.

- ``lab``: Redfish out-of-band (the lab's emulated BMCs) and the real agent code running
  in-process against the node's synthetic hardware root.
- ``redfish``: Redfish out-of-band, inspection included (the BMC's inventory); burn-in,
  deploy and cleaning through the network-booted agent (drivers/agent_remote.py).
- ``ipmi``: IPMI out-of-band (pyghmi): power, boot device, FRU, sensors, SEL; inspection and
  the rest of the in-band work through the network-booted agent.
- ``fake``: no hardware, for unit tests and benchmarks.
- ``none``: a discovered node without a BMC yet; every step asks for one (drivers/no_bmc.py).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from metalfleet.core.errors import ValidationError
from metalfleet.drivers.base import HardwareType


def _lab() -> HardwareType:
    from metalfleet.drivers import agent_local
    from metalfleet.drivers.redfish.boot import RedfishBoot
    from metalfleet.drivers.redfish.management import RedfishManagement
    from metalfleet.drivers.redfish.power import RedfishPower

    return HardwareType(
        name="lab", power=RedfishPower(), boot=RedfishBoot(), management=RedfishManagement(),
        inspect=agent_local.AgentLocalInspect(), burn_in=agent_local.AgentLocalBurnIn(),
        deploy=agent_local.AgentLocalDeploy(), clean=agent_local.AgentLocalClean(),
    )


def _redfish() -> HardwareType:
    from metalfleet.drivers import agent_remote
    from metalfleet.drivers.redfish.boot import RedfishBoot
    from metalfleet.drivers.redfish.inventory import RedfishInspect
    from metalfleet.drivers.redfish.management import RedfishManagement
    from metalfleet.drivers.redfish.power import RedfishPower

    return HardwareType(
        name="redfish", power=RedfishPower(), boot=RedfishBoot(),
        management=RedfishManagement(),
        inspect=agent_remote.ChooseInspect(RedfishInspect()),
        burn_in=agent_remote.AgentRemoteBurnIn(), deploy=agent_remote.AgentRemoteDeploy(),
        clean=agent_remote.AgentRemoteClean(),
    )


def _ipmi() -> HardwareType:
    from metalfleet.drivers import agent_remote
    from metalfleet.drivers.ipmi import IpmiBoot, IpmiManagement, IpmiPower

    return HardwareType(
        name="ipmi", power=IpmiPower(), boot=IpmiBoot(), management=IpmiManagement(),
        inspect=agent_remote.AgentRemoteInspect(), burn_in=agent_remote.AgentRemoteBurnIn(),
        deploy=agent_remote.AgentRemoteDeploy(), clean=agent_remote.AgentRemoteClean(),
    )


def _fake() -> HardwareType:
    from metalfleet.drivers import fake

    return fake.hardware_type()


def _none() -> HardwareType:
    from metalfleet.drivers import no_bmc

    return no_bmc.hardware_type()


FACTORIES: dict[str, Callable[[], HardwareType]] = {
    "lab": _lab,
    "redfish": _redfish,
    "ipmi": _ipmi,
    "fake": _fake,
    "none": _none,
}


@cache
def get_hardware_type(name: str) -> HardwareType:
    factory = FACTORIES.get(name)
    if factory is None:
        raise ValidationError(
            f"unknown hardware type {name!r}; known: {', '.join(sorted(FACTORIES))}"
        )
    return factory()
