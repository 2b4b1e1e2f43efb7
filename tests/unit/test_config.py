"""Settings read from the environment."""

from __future__ import annotations

import pytest

from metalfleet.config import AGENT_LOOKUPS_PER_MINUTE, Settings


def test_agent_lookup_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METALFLEET_AGENT_LOOKUPS_PER_MINUTE", raising=False)
    assert Settings().agent_lookups_per_minute == AGENT_LOOKUPS_PER_MINUTE == 30
    monkeypatch.setenv("METALFLEET_AGENT_LOOKUPS_PER_MINUTE", " 600 ")
    assert Settings().agent_lookups_per_minute == 600
    for bad in ("0", "-5", "lots"):
        monkeypatch.setenv("METALFLEET_AGENT_LOOKUPS_PER_MINUTE", bad)
        with pytest.raises(ValueError, match="METALFLEET_AGENT_LOOKUPS_PER_MINUTE"):
            Settings()
