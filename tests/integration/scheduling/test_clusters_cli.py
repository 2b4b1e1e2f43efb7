"""`metalfleet cluster ...` against a live API: create, show, list, render, quota, delete."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app
from metalfleet.runtime import AppContext
from tests.integration.scheduling.fleet import GPU_CLASS, build


def test_cluster_commands(
    client: TestClient, context: AppContext, live_server: str, admin_token: str, tmp_path: Path,
) -> None:
    build(client, context, racks=[2, 2])
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", admin_token, *args])
        assert result.exit_code == 0, result.output
        return result.output

    cli("cluster", "create", "hpc", "--scheduler", "slurm", "--class", GPU_CLASS,
        "--count", "2", "--tenant", "acme", "--same-leaf")
    shown = cli("cluster", "show", "hpc", "-o", "json")
    assert '"leaves": [' in shown and '"ib-leaf-1"' in shown
    assert "hpc" in cli("cluster", "list")
    out = cli("cluster", "render", "hpc", "--dir", str(tmp_path / "slurm"))
    assert "slurm.conf" in out
    assert "SwitchName=ib-leaf-1 Nodes=gpu-r1-[01-02]" in (
        tmp_path / "slurm" / "topology.conf").read_text()
    cli("cluster", "quota", "acme", "--class", GPU_CLASS, "--max", "2")
    failed = runner.invoke(app, ["--url", live_server, "--token", admin_token, "cluster",
                                 "create", "more", "--class", GPU_CLASS, "--count", "1",
                                 "--tenant", "acme"])
    assert failed.exit_code == 1 and "Quota exceeded" in failed.output
    cli("cluster", "delete", "hpc")
    assert "nothing found" in cli("cluster", "list")
