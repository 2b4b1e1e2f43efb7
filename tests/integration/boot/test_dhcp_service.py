"""`metalfleet boot dhcp`'s service: dnsmasq fed from the fleet model, reloaded on change."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metalfleet.boot.dhcp_service import DhcpService, hosts_for_network, settings_for_network
from metalfleet.boot.dnsmasq import Dnsmasq
from metalfleet.runtime import AppContext
from tests.conftest import fake_node
from tests.integration.boot.netns import CLIENT_MAC, _lease, namespaces

__all__ = ["namespaces"]
pytestmark = pytest.mark.slow


def test_fleet_drives_dnsmasq(client: TestClient, context: AppContext,
                              namespaces: tuple[str, str], tmp_path: Path) -> None:
    server, client_ns = namespaces
    client.post("/v1/networks", json={
        "name": "prov", "role": "provisioning", "cidr": "10.77.0.0/24", "gateway": "10.77.0.1",
        "dhcp_start": "10.77.0.100", "dhcp_end": "10.77.0.150", "mtu": 1500})
    body = fake_node("n1", CLIENT_MAC)
    body["ports"] = [{"name": "eth0", "mac": CLIENT_MAC, "network": "prov", "pxe": True}]
    assert client.post("/v1/nodes", json=body).status_code == 201
    assert [(h.mac, h.name, h.address) for h in hosts_for_network(context.db, "prov")] == [
        (CLIENT_MAC, "n1", None)]

    settings = settings_for_network(context.db, "prov", "vs" + server.removeprefix("mfs-"),
                                    "http://10.77.0.1:8080", "full")
    service = DhcpService(context.db, Dnsmasq(settings, tmp_path / "dhcp"), "prov",
                          refresh_s=0.2)
    (tmp_path / "dhcp").mkdir()
    stop = threading.Event()
    thread = threading.Thread(target=service.serve, args=(stop,),
                              kwargs={"prefix": ["nsenter", f"--net=/run/netns/{server}"]},
                              daemon=True)
    thread.start()
    try:
        lease = _lease(client_ns, tmp_path)
        assert 100 <= int(lease["ip"].rsplit(".", 1)[1]) <= 150, "dynamic before IPAM"
        r = client.post("/v1/networks/prov/allocations",
                        json={"address": "10.77.0.60", "node": "n1", "purpose": "pxe"})
        assert r.status_code == 201
        deadline = time.monotonic() + 10
        while service.reloads == 0:
            assert time.monotonic() < deadline, "the service did not notice the allocation"
            time.sleep(0.1)
        assert _lease(client_ns, tmp_path)["ip"] == "10.77.0.60"
        reloads = service.reloads
        time.sleep(0.6)
        assert service.reloads == reloads, "no reload while nothing changes"
    finally:
        stop.set()
        thread.join(timeout=15)
