"""Linux bridge dialects moving real ports, proven with packets between namespaces."""

from __future__ import annotations

import pytest

from metalfleet.network.linux_bridge import BridgePerNetwork, VlanFilteringBridge
from metalfleet.network.switch import PortState, Segment, SwitchError
from metalfleet.network.transport import LocalTransport
from tests.integration.network.fabric import Fabric, kernel_has_vlan_filtering, sh

PROVISIONING = Segment("provisioning", 10)
TENANT_A = Segment("tenant-acme", 101)


def test_ports_move_between_networks_and_packets_follow(fabric: Fabric) -> None:
    switch = BridgePerNetwork(LocalTransport(netns=fabric.switch))
    for port in ("pa", "pb", "pg"):
        assert switch.move_port(port, PROVISIONING) == PortState(port, 10)
    assert fabric.reaches("a", "b") and fabric.reaches("a", "g")

    switch.move_port("pa", TENANT_A)
    switch.move_port("pg", TENANT_A)  # the tenant's gateway
    assert switch.port_state("pa") == PortState("pa", 101)
    assert fabric.reaches("a", "g"), "its own tenant gateway answers"
    assert not fabric.reaches("a", "b"), "the provisioning network does not"
    assert not fabric.reaches("b", "a"), "nor can provisioning reach the tenant"

    switch.move_port("pa", PROVISIONING)  # undeploy: back for cleaning
    assert fabric.reaches("b", "a") and not fabric.reaches("a", "g")

    switch.detach("pa")  # quarantine of last resort: on no network at all
    assert switch.port_state("pa") == PortState("pa", None)
    assert not fabric.reaches("a", "b") and not fabric.reaches("a", "g")


def test_a_port_the_switch_lacks_or_a_hostile_name_is_refused(fabric: Fabric) -> None:
    switch = BridgePerNetwork(LocalTransport(netns=fabric.switch))
    with pytest.raises(SwitchError, match="failed"):
        switch.move_port("swp99", PROVISIONING)
    with pytest.raises(SwitchError, match="not a port name"):
        switch.move_port("pa; ip link del pb", PROVISIONING)
    assert sh("ip", "-n", fabric.switch, "link", "show", "pb").returncode == 0
    with pytest.raises(SwitchError, match="outside 1-4094"):
        Segment("bad", 4095)


def test_the_vlan_filtering_dialect_works_or_says_the_kernel_lacks_it(fabric: Fabric) -> None:
    sh("ip", "-n", fabric.switch, "link", "add", "br0", "type", "bridge")
    for port in ("pa", "pb", "pg"):
        sh("ip", "-n", fabric.switch, "link", "set", port, "master", "br0", "up")
    sh("ip", "-n", fabric.switch, "link", "set", "br0", "up")
    switch = VlanFilteringBridge(LocalTransport(netns=fabric.switch), "br0")
    if not kernel_has_vlan_filtering():
        # CI's kernel (6.18 Firecracker): the dialect must say why, not half-apply.
        with pytest.raises(SwitchError, match="no VLAN filtering"):
            switch.move_port("pa", TENANT_A)
        return
    sh("ip", "-n", fabric.switch, "link", "set", "br0", "type", "bridge", "vlan_filtering", "1")
    for port in ("pa", "pb", "pg"):
        switch.move_port(port, PROVISIONING)
    assert fabric.reaches("a", "b")
    switch.move_port("pa", TENANT_A)
    switch.move_port("pg", TENANT_A)
    assert fabric.reaches("a", "g") and not fabric.reaches("a", "b")


def test_concurrent_moves_to_a_new_network_all_succeed(fabric: Fabric) -> None:
    """Several conductor threads put ports on a network whose bridge does not exist yet:
    the ones that lose the race to create it must not fail (found by bench/port_moves.py)."""
    import concurrent.futures

    def move(port: str) -> PortState:
        return BridgePerNetwork(LocalTransport(netns=fabric.switch)).move_port(port, TENANT_A)

    for _ in range(3):
        if "mfv101" in sh("ip", "-n", fabric.switch, "-br", "link").stdout:
            sh("ip", "-n", fabric.switch, "link", "del", "mfv101")  # a new network each round
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            states = list(pool.map(move, ["pa", "pb", "pg"]))
        assert [s.vlan for s in states] == [101, 101, 101]
