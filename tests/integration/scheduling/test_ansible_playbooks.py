"""The GPU node playbook and roles with the real ansible-playbook (connection local): syntax,
the tuning profile written under a throwaway root twice (the second run changes nothing), and
the driver/CUDA/container roles in --check mode with package installs turned off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metalfleet.scheduling.ansible import playbooks

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def play(tmp_path: Path, directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not (BIN / "ansible-playbook").exists():
        pytest.fail("ansible-playbook is missing: pip install ansible-core")
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"[role_gpu]\nnode1 ansible_connection=local "
                         f"ansible_python_interpreter={sys.executable}\n")
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_RETRY_FILES_ENABLED": "0"}
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(directory / "gpu-node.yml"),
         "-e", "metalfleet_become=false", *args],
        capture_output=True, text=True, env=env, timeout=240, check=False)


def recap(output: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith("node1 "))
    return {key: int(value) for key, _, value in
            (part.partition("=") for part in line.split(":", 1)[1].split())}


def test_playbooks_syntax_tuning_idempotent_and_package_roles_in_check_mode(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "pb"
    written = playbooks.write(directory)
    relative = [p.relative_to(directory).parts for p in written]
    assert {parts[1] for parts in relative if parts[0] == "roles"} == set(playbooks.ROLES)
    syntax = play(tmp_path, directory, "--syntax-check")
    assert syntax.returncode == 0, syntax.stdout + syntax.stderr

    root = tmp_path / "root"
    tuning = ["--tags", "tuning", "-e", f"metalfleet_root={root}", "-e", "metalfleet_apply=false",
              "-e", "tuning_swappiness=5", "-e", "tuning_hugepages=2048"]
    first = play(tmp_path, directory, *tuning)
    assert first.returncode == 0, first.stdout + first.stderr
    assert recap(first.stdout)["changed"] >= 4 and recap(first.stdout)["failed"] == 0
    sysctl = (root / "etc/sysctl.d/90-metalfleet-gpu.conf").read_text()
    assert "vm.swappiness = 5" in sysctl and "vm.nr_hugepages = 2048" in sysctl
    unit = (root / "etc/systemd/system/metalfleet-cpu-governor.service").read_text()
    assert "echo performance" in unit
    script = root / "usr/local/sbin/metalfleet-irq-affinity"
    assert script.stat().st_mode & 0o111 and "0x030200" in script.read_text()
    check = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr
    second = play(tmp_path, directory, *tuning)
    assert second.returncode == 0, second.stdout + second.stderr
    assert recap(second.stdout)["changed"] == 0, second.stdout

    packages = ["--check", "--tags", "driver,cuda,container", "-e", f"metalfleet_root={root}",
                "-e", "metalfleet_install_packages=false", "-e", "metalfleet_apply=false"]
    dry = play(tmp_path, directory, *packages)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert recap(dry.stdout)["failed"] == 0 and recap(dry.stdout)["changed"] >= 3
    assert "NVIDIA driver packages" in dry.stdout  # listed, skipped by the gate
    assert not (root / "etc/modprobe.d/blacklist-nouveau.conf").exists()  # check mode
