"""Pieces of the observability package that need no database."""

from __future__ import annotations

import pytest

from metalfleet.observability import rules
from metalfleet.observability.metrics import bmc_error_kind


@pytest.mark.parametrize(("message", "kind"), [
    ("Redfish request timed out after 5 s", "timeout"),
    ("401 Unauthorized", "auth"),
    ("bad credentials for admin", "auth"),
    ("[Errno 111] Connection refused", "unreachable"),
    ("BMC answered garbage", "other"),
])
def test_bmc_error_kinds_are_bounded(message: str, kind: str) -> None:
    assert bmc_error_kind(message) == kind


def test_render_matches_prometheus_value_formatting() -> None:
    labels = {"node": "g1", "gpu": "0"}
    assert rules.render("{{ $labels.node }} GPU {{ $labels.gpu }} XID {{ $value }}",
                        labels, 79.0) == "g1 GPU 0 XID 79"
    assert rules.render("{{ $value }}", labels, 0.5) == "0.5"
