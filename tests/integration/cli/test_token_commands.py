"""`metalfleet token create --expires-in` and `token list` (expiry, last use) on a live API."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from metalfleet.cli.admin import parse_expires_in
from metalfleet.cli.main import app
from metalfleet.db.base import as_utc, utcnow


def test_expires_in_takes_a_number_and_a_unit() -> None:
    assert parse_expires_in("30d") == timedelta(days=30)
    assert parse_expires_in("12h") == timedelta(hours=12)
    assert parse_expires_in("90m") == timedelta(minutes=90)
    assert parse_expires_in("2w") == timedelta(weeks=2)
    for bad in ("", "30", "d", "0d", "-1d", "1.5h", "30y"):
        with pytest.raises(typer.BadParameter):
            parse_expires_in(bad)


def test_token_create_with_expiry_and_list_shows_last_use(
        live_server: str, admin_token: str) -> None:
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["--url", live_server, "--token", admin_token, *args])
        assert result.exit_code == code, result.output
        return result.output

    made = cli("token", "create", "ci", "--role", "viewer", "--expires-in", "30d")
    secret = made.split()[0]
    assert secret.startswith("mf_")
    cli("token", "create", "bad", "--role", "viewer", "--expires-in", "soon", code=2)
    listed = {t["name"]: t for t in json.loads(cli("token", "list", "-o", "json"))}
    assert "bad" not in listed
    expires = as_utc(datetime.fromisoformat(listed["ci"]["expires_at"]))
    assert abs(expires - (utcnow() + timedelta(days=30))) < timedelta(minutes=5)
    assert listed["ci"]["last_used_at"] is None
    runner.invoke(app, ["--url", live_server, "--token", secret, "node", "list"])
    listed = {t["name"]: t for t in json.loads(cli("token", "list", "-o", "json"))}
    assert listed["ci"]["last_used_at"] is not None
