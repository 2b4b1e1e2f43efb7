"""`metalfleet node monitor-credential NAME [--out FILE] [--revoke]` on a live API."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app
from tests.conftest import fake_node

REPORT = {"source": "agent", "findings": [], "checks_run": []}


def test_issue_to_a_private_file_then_revoke(client: TestClient, live_server: str,
                                             admin_token: str, tmp_path: Path) -> None:
    assert client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01")).status_code == 201
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", admin_token, *args])
        assert result.exit_code == 0, result.output
        return result.output

    out = tmp_path / "etc" / "monitor.token"
    assert "mfn_" not in cli("node", "monitor-credential", "n1", "--out", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    secret = out.read_text().strip()
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.post("/v1/nodes/n1/health-reports", json=REPORT,
                       headers=headers).status_code == 200
    cli("node", "monitor-credential", "n1", "--revoke")
    assert client.post("/v1/nodes/n1/health-reports", json=REPORT,
                       headers=headers).status_code == 401
