"""`metalfleet audit` (search) and `metalfleet audit export` (JSON lines) on a live API."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app
from tests.conftest import fake_node


def test_audit_search_and_export(client: TestClient, live_server: str, admin_token: str,
                                 tmp_path: Path) -> None:
    client.post("/v1/tenants", json={"name": "acme"})
    member = client.post("/v1/tokens", json={"name": "acme-user", "role": "member",
                                             "tenant": "acme"}).json()["token"]
    client.post("/v1/nodes", json=fake_node("n1", "52:54:00:00:00:01"))
    client.delete("/v1/nodes/n1", headers={"Authorization": f"Bearer {member}"})
    runner = CliRunner()

    def cli(*args: str, token: str = admin_token, code: int = 0) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", token, *args])
        assert result.exit_code == code, result.output
        return result.output

    refused = json.loads(cli("audit", "--outcome", "refused", "-o", "json"))
    assert [(e["principal"], e["method"], e["target"], e["status"]) for e in refused] == [
        ("acme-user", "DELETE", "n1", 403)]
    on_n1 = json.loads(cli("audit", "--target", "n1", "-o", "json"))
    assert [e["method"] for e in on_n1] == ["DELETE", "POST"]
    assert len(json.loads(cli("audit", "--limit", "2", "-o", "json"))) == 2
    assert json.loads(cli("audit", "--since", "2999-01-01", "-o", "json")) == []
    table = cli("audit", "--principal", "acme-user")
    assert "acme-user" in table and "403" in table

    out = tmp_path / "audit.jsonl"
    assert "wrote 4 audit rows" in cli("audit", "export", "--out", str(out))
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["path"] for e in lines] == ["/v1/tenants", "/v1/tokens", "/v1/nodes",
                                          "/v1/nodes/n1"]
    assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
    resumed = cli("audit", "export", "--after", str(lines[1]["id"]))
    assert [json.loads(line)["path"] for line in resumed.splitlines()] == [
        "/v1/nodes", "/v1/nodes/n1"]
    assert member not in out.read_text()

    denied = cli("audit", "export", token=member, code=1)
    assert "403" in denied and "admin" in denied
    assert "403" in cli("audit", token=member, code=1)
