"""First-boot configuration for cloud-init's NoCloud data source, from the fleet model.

meta-data names the instance, user-data carries the hostname and the tenant's SSH keys,
network-config (version 2) configures every port by MAC with its network's MTU, and a VLAN
sub-interface where the network has a VLAN id and the port is not the provisioning port.
"""

from __future__ import annotations

from typing import Any

import yaml

from metalfleet.db import models as m


def meta_data(node: m.Node) -> str:
    return yaml.safe_dump({"instance-id": node.id, "local-hostname": node.name},
                          sort_keys=False)


def user_data(node: m.Node) -> str:
    config: dict[str, Any] = {"hostname": node.name, "preserve_hostname": False}
    keys = list(node.tenant.ssh_keys) if node.tenant is not None else []
    if keys:
        config["ssh_authorized_keys"] = keys
    return "#cloud-config\n" + yaml.safe_dump(config, sort_keys=False)


def network_config(node: m.Node) -> str:
    ethernets: dict[str, Any] = {}
    vlans: dict[str, Any] = {}
    for port in node.ports:
        network = port.network
        entry: dict[str, Any] = {"match": {"macaddress": port.mac}, "set-name": port.name}
        if network is not None:
            entry["mtu"] = network.mtu
        if network is None or port.pxe or network.vlan_id is None:
            entry["dhcp4"] = True
        else:
            entry["dhcp4"] = False
            vlan: dict[str, Any] = {"id": network.vlan_id, "link": port.name,
                                    "mtu": network.mtu, "dhcp4": True}
            vlans[f"{port.name}.{network.vlan_id}"] = vlan
        ethernets[port.name] = entry
    config: dict[str, Any] = {"version": 2, "ethernets": ethernets}
    if vlans:
        config["vlans"] = vlans
    return yaml.safe_dump(config, sort_keys=False)

