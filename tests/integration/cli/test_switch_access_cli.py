"""`metalfleet switch access`: set and show how metalfleet reaches a switch; the password is
read from a file, stored encrypted and never printed; members are refused."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app


def test_switch_access_set_and_show(client: TestClient, live_server: str, admin_token: str,
                                    tmp_path: Path) -> None:
    client.post("/v1/switches", json={"name": "leaf1", "role": "leaf", "fabric": "ethernet"})
    client.post("/v1/tenants", json={"name": "acme"})
    member = client.post("/v1/tokens", json={"name": "acme-user", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    runner = CliRunner()

    def cli(*args: str, token: str = admin_token, code: int = 0) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", token, *args])
        assert result.exit_code == code, result.output
        return result.output

    secret = tmp_path / "pw"
    secret.write_text("sw1tch-s3cret\n")
    set_out = cli("switch", "access", "leaf1", "--driver", "linux-bridge", "--address",
                  "10.0.0.5", "--username", "netops", "--password-file", str(secret),
                  "--info", "sudo=true", "-o", "json")
    assert json.loads(set_out)["has_password"] is True and "sw1tch" not in set_out
    shown = json.loads(cli("switch", "access", "leaf1", "-o", "json"))
    assert shown == {"switch": "leaf1", "driver": "linux-bridge", "address": "10.0.0.5",
                     "username": "netops", "has_password": True,
                     "driver_info": {"sudo": True}}
    refused = cli("switch", "access", "leaf1", token=member, code=1)
    assert "403" in refused or "ermission" in refused
    missing = cli("switch", "access", "leaf1", "--driver", "fake", "--password-file",
                  str(tmp_path / "absent"), code=2)
    assert "cannot read" in missing
