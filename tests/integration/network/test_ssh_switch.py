"""The SSH transport (netmiko) against a real OpenSSH server that is the switch: sshd runs
inside the switch's network namespace and applies the bridge dialect's commands there."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from metalfleet.network.linux_bridge import BridgePerNetwork
from metalfleet.network.switch import PortState, Segment, SwitchError
from metalfleet.network.transport import CommandFailed, SshTransport
from tests.integration.network.fabric import Fabric, need, sh

SSHD_CONFIG = """Port 2222
ListenAddress {address}
HostKey {dir}/host_key
AuthorizedKeysFile {dir}/authorized_keys
PidFile {dir}/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
"""


@pytest.fixture
def ssh_switch(fabric: Fabric, tmp_path: Path) -> Iterator[tuple[Fabric, SshTransport]]:
    """sshd on the switch's management port (10.98.x.1), reached from the root namespace."""
    sshd = need("sshd", "openssh-server")
    need("ssh-keygen", "openssh-client")
    tag = uuid.uuid4().hex[:6]
    octet = int(tag[:2], 16) % 200 + 20
    switch_side, our_side = f"10.98.{octet}.1", f"10.98.{octet}.2"
    sh("ip", "link", "add", f"mfm{tag}", "type", "veth", "peer", "name", "mgmt0", "netns",
       fabric.switch)
    sh("ip", "addr", "add", f"{our_side}/30", "dev", f"mfm{tag}")
    sh("ip", "link", "set", f"mfm{tag}", "up")
    sh("ip", "-n", fabric.switch, "addr", "add", f"{switch_side}/30", "dev", "mgmt0")
    sh("ip", "-n", fabric.switch, "link", "set", "mgmt0", "up")
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "host_key"))
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "client_key"))
    (tmp_path / "authorized_keys").write_text((tmp_path / "client_key.pub").read_text())
    config = tmp_path / "sshd_config"
    config.write_text(SSHD_CONFIG.format(address=switch_side, dir=tmp_path))
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    server = subprocess.Popen(["ip", "netns", "exec", fabric.switch, sshd, "-D", "-e", "-f",
                               str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    transport = SshTransport(host=switch_side, port=2222, username="root",
                             key_file=str(tmp_path / "client_key"))
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["ip", "netns", "exec", fabric.switch, "ss", "-ltn",
                              "sport = :2222"], capture_output=True, text=True
                             ).stdout.count("LISTEN") == 0:
            if server.poll() is not None or time.monotonic() > deadline:
                output = server.stdout.read().decode() if server.stdout else ""
                pytest.fail(f"sshd did not start: {output[-800:]}")
            time.sleep(0.1)
        yield fabric, transport
    finally:
        transport.close()
        server.terminate()
        server.wait(timeout=10)
        subprocess.run(["ip", "link", "del", f"mfm{tag}"], capture_output=True)


@pytest.mark.slow
def test_an_ssh_switch_moves_ports_and_packets_follow(
        ssh_switch: tuple[Fabric, SshTransport]) -> None:
    fabric, transport = ssh_switch
    switch = BridgePerNetwork(transport)
    for port in ("pa", "pb", "pg"):
        switch.move_port(port, Segment("provisioning", 10))
    assert fabric.reaches("a", "b")
    assert switch.move_port("pa", Segment("tenant-acme", 101)) == PortState("pa", 101)
    switch.move_port("pg", Segment("tenant-acme", 101))
    assert fabric.reaches("a", "g") and not fabric.reaches("a", "b")
    # the bridges exist in the switch's namespace, not on this host
    assert "mfv101" in sh("ip", "-n", fabric.switch, "-br", "link").stdout
    assert subprocess.run(["ip", "link", "show", "mfv101"], capture_output=True).returncode != 0


@pytest.mark.slow
def test_a_refusal_over_ssh_carries_the_switch_s_words(
        ssh_switch: tuple[Fabric, SshTransport]) -> None:
    _, transport = ssh_switch
    with pytest.raises(CommandFailed, match="exit 1") as refused:
        transport.run(["ip", "link", "set", "dev", "swp99", "up"])
    assert "swp99" in str(refused.value)
    # an argument that tries to break out of the command is one quoted argument
    with pytest.raises(CommandFailed):
        transport.run(["ip", "link", "show", "dev", "pa; touch /tmp/mf-pwned"])
    assert not Path("/tmp/mf-pwned").exists()


@pytest.mark.slow
def test_a_wrong_key_is_a_clear_login_error(ssh_switch: tuple[Fabric, SshTransport],
                                           tmp_path: Path) -> None:
    _, transport = ssh_switch
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger"))
    stranger = SshTransport(host=transport.host, port=transport.port, username="root",
                            key_file=str(tmp_path / "stranger"), connect_timeout_s=5)
    with pytest.raises(SwitchError, match="cannot log in to switch"):
        stranger.run(["true"])
