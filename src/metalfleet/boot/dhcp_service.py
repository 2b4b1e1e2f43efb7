"""`metalfleet boot dhcp`: run dnsmasq for one provisioning network, kept in step with the fleet.

Every enrolled node with a PXE port on the network gets a host entry (its MAC, its name and,
when IPAM holds an address for it on that network, that fixed address). The service re-reads
the fleet every ``refresh_s`` seconds and reloads dnsmasq (SIGHUP) only when the entries
changed. One service per provisioning network and host; it needs only read access to the
database, so it runs beside any API or conductor process.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select

from metalfleet.boot.dnsmasq import DhcpSettings, Dnsmasq, HostEntry
from metalfleet.db import models as m
from metalfleet.db.session import Database
from metalfleet.inventory import resources

log = logging.getLogger(__name__)


def hosts_for_network(db: Database, network_name: str) -> list[HostEntry]:
    with db.session() as session:
        network = resources.get(session, resources.KINDS["networks"], network_name)
        fixed = {node_id: address for node_id, address in session.execute(
            select(m.IpAllocation.node_id, m.IpAllocation.address)
            .where(m.IpAllocation.network_id == network.id, m.IpAllocation.node_id.is_not(None))
        )}
        rows = session.execute(
            select(m.Port.mac, m.Node.name, m.Node.id).join(m.Node)
            .where(m.Port.network_id == network.id, m.Port.pxe.is_(True))
            .order_by(m.Node.name)
        ).all()
    return [HostEntry(mac=mac, name=name, address=fixed.get(node_id))
            for mac, name, node_id in rows]


def settings_for_network(db: Database, network_name: str, interface: str, api_url: str,
                         mode: str) -> DhcpSettings:
    with db.session() as session:
        network = resources.get(session, resources.KINDS["networks"], network_name)
        return DhcpSettings(interface=interface, cidr=network.cidr, api_url=api_url, mode=mode,
                            dhcp_start=network.dhcp_start, dhcp_end=network.dhcp_end,
                            gateway=network.gateway, mtu=network.mtu)


class DhcpService:
    def __init__(self, db: Database, dnsmasq: Dnsmasq, network_name: str,
                 refresh_s: float = 10.0) -> None:
        self.db = db
        self.dnsmasq = dnsmasq
        self.network_name = network_name
        self.refresh_s = refresh_s
        self.hosts: list[HostEntry] = []
        self.reloads = 0

    def start(self, prefix: list[str] | None = None) -> None:
        self.hosts = hosts_for_network(self.db, self.network_name)
        self.dnsmasq.start(self.hosts, prefix=prefix)
        log.info("DHCP on %s for network %s: %d hosts", self.dnsmasq.settings.interface,
                 self.network_name, len(self.hosts))

    def refresh(self) -> bool:
        """Reload dnsmasq if the fleet's entries changed; True when it did."""
        hosts = hosts_for_network(self.db, self.network_name)
        if hosts == self.hosts:
            return False
        self.hosts = hosts
        self.dnsmasq.reload(hosts)
        self.reloads += 1
        log.info("DHCP hosts for %s changed: %d hosts, dnsmasq reloaded",
                 self.network_name, len(hosts))
        return True

    def serve(self, stop: threading.Event, prefix: list[str] | None = None) -> None:
        self.start(prefix)
        try:
            while not stop.wait(self.refresh_s):
                self.refresh()
        finally:
            self.dnsmasq.stop()
