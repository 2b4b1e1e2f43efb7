"""Rules and evaluation: severities, two strikes, the strongest remediation, overrides."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from metalfleet.core.errors import ValidationError
from metalfleet.health.assessment import assess, counts_critical, describe
from metalfleet.health.rules import DEFAULT_RULES, RuleBook


@dataclass
class Sig:
    check: str
    severity: str = "critical"
    strikes: int = 1
    component: str = ""
    message: str = ""


BOOK = RuleBook()


def test_no_signals_is_ok() -> None:
    result = assess([], BOOK)
    assert (result.health, result.critical, result.cause) == ("ok", [], None)


def test_a_critical_finding_fails_the_node_at_once() -> None:
    result = assess([Sig("gpu-xid", component="GPU3")], BOOK)
    assert result.health == "failed" and result.remediation == "replace"
    assert result.cause is not None and describe(result.cause) == "gpu-xid on GPU3"


def test_a_warning_degrades() -> None:
    assert assess([Sig("disk-smart", "warning", strikes=5)], BOOK).health == "degraded"


@pytest.mark.parametrize("check", ["ib-link-down", "pcie-width", "thermal"])
def test_two_strike_checks_degrade_first_and_fail_on_the_second(check: str) -> None:
    assert assess([Sig(check, strikes=1)], BOOK).health == "degraded"
    assert assess([Sig(check, strikes=2)], BOOK).health == "failed"
    assert not counts_critical(Sig(check, "warning", strikes=3), BOOK)


def test_unknown_checks_follow_the_star_rule() -> None:
    assert assess([Sig("brand-new-check")], BOOK).health == "failed"
    book = RuleBook.from_dict({"*": {"two_strike": True}})
    assert assess([Sig("brand-new-check")], book).health == "degraded"


def test_the_strongest_remediation_among_the_critical_signals_wins() -> None:
    signals = [Sig("operator-repair"), Sig("gpu-ecc")]
    assert assess(signals, BOOK).remediation == "replace"
    assert assess([Sig("operator-repair")], BOOK).remediation == "maintenance"


def test_overrides_merge_with_the_defaults() -> None:
    book = RuleBook.from_dict({"fan": {"severity": "warning"},
                               "gpu-xid": {"remediation": "none", "two_strike": True}}, 30)
    assert book.two_strike_window_s == 30
    assert assess([Sig("fan")], book).health == "degraded"
    assert book.rule("gpu-xid").two_strike and book.rule("gpu-xid").remediation == "none"
    assert book.rule("gpu-ecc") == DEFAULT_RULES["gpu-ecc"]
    assert assess([Sig("gpu-xid", strikes=2)], book).remediation == "none"


@pytest.mark.parametrize("override", [{"fan": {"severity": "loud"}},
                                      {"fan": {"remediation": "reboot"}},
                                      {"fan": {"colour": "red"}}])
def test_bad_overrides_say_what_is_allowed(override: dict[str, dict[str, object]]) -> None:
    with pytest.raises(ValidationError) as info:
        RuleBook.from_dict(override)
    assert "fan" in info.value.detail
