"""`metalfleet health ...` and `metalfleet ticket ...` against a live API."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from metalfleet.cli.main import app
from metalfleet.runtime import AppContext
from tests.integration.health.rig import XID, report
from tests.integration.scheduling.fleet import build


def test_health_and_ticket_commands(
    client: TestClient, context: AppContext, live_server: str, admin_token: str,
) -> None:
    build(client, context, [2])
    report(context, "gpu-r1-01", [XID])
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", admin_token, *args])
        assert result.exit_code == code, result.output
        return result.output

    shown = cli("health", "show", "gpu-r1-01")
    assert "health failed" in shown and "gpu-xid" in shown and "open ticket" in shown
    health = json.loads(cli("health", "show", "gpu-r1-01", "-o", "json"))
    assert health["signals"][0]["evidence"]["xid"] == 79
    assert "GPU3" in cli("health", "signals", "--node", "gpu-r1-01", "--status", "active")
    assert "nothing found" in cli("health", "signals", "--status", "cleared")

    opened = json.loads(cli("ticket", "open", "gpu-r1-02", "--component", "FAN2",
                            "--summary", "fan rattles", "-o", "json"))
    assert opened["status"] == "open" and opened["component"] == "FAN2"
    listed = json.loads(cli("ticket", "list", "--status", "open", "-o", "json"))
    assert {t["node"] for t in listed} == {"gpu-r1-01", "gpu-r1-02"}
    assert "fan rattles" in cli("ticket", "show", opened["id"])
    resolved = json.loads(cli("ticket", "resolve", opened["id"], "--note", "fan replaced",
                              "-o", "json"))
    assert [e["kind"] for e in resolved["evidence"]][-2:] == ["repair", "validate-requested"]
    failed = cli("ticket", "show", "no-such-ticket", code=1)
    assert "no repair ticket" in failed
    assert "one of open, resolved" in cli("ticket", "list", "--status", "maybe", code=1)
