"""The ``ipmi`` hardware type: power, boot device, sensors, SEL and FRU over IPMI (pyghmi)."""

from __future__ import annotations

from metalfleet.drivers.ipmi.client import IpmiAddress, IpmiClient, parse_ipmi_address
from metalfleet.drivers.ipmi.interfaces import IpmiBoot, IpmiManagement, IpmiPower, read_fru

__all__ = ["IpmiAddress", "IpmiBoot", "IpmiClient", "IpmiManagement", "IpmiPower",
           "parse_ipmi_address", "read_fru"]
