"""Hardware types by name: which implementation serves each interface.

- ``redfish``: Redfish out-of-band, inspection included (the BMC's inventory); burn-in,
  deploy and cleaning through the network-booted agent (drivers/agent_remote.py).
- ``ipmi``: IPMI out-of-band (pyghmi): power, boot device, FRU, sensors, SEL; inspection and
  the rest of the in-band work through the network-booted agent.
- ``fake``: no hardware, for unit tests and benchmarks.
- ``none``: a discovered node without a BMC yet; every step asks for one (drivers/no_bmc.py).

Plug-ins add their own with :func:`register`: the lab registers ``lab`` (Redfish out of band
against its emulated BMCs, the agent's code in-process on synthetic hardware roots) when a
process starts with ``--lab``, so no other process can run a lab node.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from metalfleet.core.errors import ValidationError
from metalfleet.drivers.base import HardwareType


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
    "redfish": _redfish,
    "ipmi": _ipmi,
    "fake": _fake,
    "none": _none,
}


PLUGIN_TYPES = {"lab": "a metalfleet started with --lab"}


def register(name: str, factory: Callable[[], HardwareType]) -> None:
    """A plug-in's hardware type, from now on in this process (replacing an earlier one)."""
    FACTORIES[name] = factory
    get_hardware_type.cache_clear()


@cache
def get_hardware_type(name: str) -> HardwareType:
    factory = FACTORIES.get(name)
    if factory is None:
        if name in PLUGIN_TYPES:
            raise ValidationError(
                f"the {name} hardware type runs only in {PLUGIN_TYPES[name]}; this process "
                "does not run it")
        raise ValidationError(
            f"unknown hardware type {name!r}; known: {', '.join(sorted(FACTORIES))}"
        )
    return factory()
