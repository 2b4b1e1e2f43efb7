"""The Ansible dynamic inventory, consumed by the real ansible-inventory and ansible-playbook."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metalfleet.runtime import AppContext
from tests.integration.scheduling.fleet import GPU_CLASS, build

BIN = Path(sys.executable).parent

PLAYBOOK = """\
- hosts: cluster_hpc
  gather_facts: false
  connection: local
  tasks:
    - name: the inventory's facts reach the play
      ansible.builtin.assert:
        that:
          - metalfleet_gpu_count == 8
          - metalfleet_cluster == "hpc"
          - metalfleet_tenant == "acme"
          - "'rack_rack_1' in group_names or 'rack_rack_2' in group_names"
"""


@pytest.mark.slow
def test_ansible_inventory_and_playbook_use_the_generated_inventory(
    client: TestClient, context: AppContext, live_server: str, admin_token: str, tmp_path: Path,
) -> None:
    for tool in ("ansible-inventory", "ansible-playbook"):
        if not (BIN / tool).exists():
            pytest.fail(f"{tool} is missing: pip install ansible-core")
    build(client, context, racks=[2, 2])
    r = client.post("/v1/clusters", json={"name": "hpc", "scheduler": "slurm", "count": 3,
                                          "node_class": GPU_CLASS, "tenant": "acme"})
    assert r.status_code == 201, r.text
    script = tmp_path / "metalfleet-inventory"
    script.write_text(f"#!/bin/sh\nexec {BIN / 'metalfleet'} --url {live_server} "
                      f"--token {admin_token} cluster ansible-inventory \"$@\"\n")
    script.chmod(0o755)
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ansible"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_NOCOLOR": "1"}

    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(script), "--list"],
                            capture_output=True, text=True, env=env, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    inventory = json.loads(listed.stdout)
    assert sorted(inventory["cluster_hpc"]["hosts"]) == ["gpu-r1-01", "gpu-r1-02", "gpu-r2-01"]
    assert sorted(inventory["rack_rack_2"]["hosts"]) == ["gpu-r2-01", "gpu-r2-02"]
    assert f"class_{GPU_CLASS.replace('-', '_')}" in inventory["all"]["children"]
    assert "tenant_acme" in inventory["all"]["children"]
    assert len(inventory["role_gpu"]["hosts"]) == 4
    hostvars = inventory["_meta"]["hostvars"]["gpu-r1-01"]
    assert hostvars["metalfleet_gpu_model"] == "NVIDIA H100 80GB HBM3"
    assert hostvars["metalfleet_cpu_sockets"] == 2

    playbook = tmp_path / "check.yml"
    playbook.write_text(PLAYBOOK)
    played = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(script), str(playbook)],
                            capture_output=True, text=True, env=env, timeout=180, check=False)
    assert played.returncode == 0, played.stdout + played.stderr
    assert "ok=1" in played.stdout and "failed=0" in played.stdout
