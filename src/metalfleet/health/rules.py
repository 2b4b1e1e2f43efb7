"""Per-check rules: how a finding's severity counts, two-strike, and what a failure triggers.

Rules are data. The defaults below cover the checks the sources ship; ``RuleBook.from_dict``
overrides them (from settings, ``health_rules``) with ``{"check": {"two_strike": true, ...}}``.
A check without a rule of its own gets the ``"*"`` rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from metalfleet.config import Settings
from metalfleet.core.errors import ValidationError

# What a failed node gets, strongest first: drain + maintenance + ticket + a spare in its
# place ("replace"); the same without the spare ("maintenance"); only the health change.
REMEDIATIONS = ("replace", "maintenance", "none")
SEVERITY_POLICIES = ("as-reported", "warning", "critical")


@dataclass(frozen=True)
class Rule:
    check: str
    # "as-reported" keeps the finding's severity; "warning"/"critical" force it.
    severity: str = "as-reported"
    # Flapping-prone checks: the first sighting only degrades, a second one within the
    # window counts as critical.
    two_strike: bool = False
    remediation: str = "replace"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_POLICIES:
            raise ValidationError(f"rule {self.check!r}: severity must be one of "
                                  f"{', '.join(SEVERITY_POLICIES)}, not {self.severity!r}")
        if self.remediation not in REMEDIATIONS:
            raise ValidationError(f"rule {self.check!r}: remediation must be one of "
                                  f"{', '.join(REMEDIATIONS)}, not {self.remediation!r}")

    def severity_of(self, reported: str) -> str:
        return reported if self.severity == "as-reported" else self.severity


DEFAULT_RULES: dict[str, Rule] = {
    rule.check: rule for rule in (
        Rule("*"),
        Rule("gpu-xid"), Rule("gpu-ecc"), Rule("gpu-missing"), Rule("disk-smart"),
        Rule("fan"), Rule("memory-ecc"),
        Rule("ib-link-down", two_strike=True),
        Rule("pcie-width", two_strike=True),
        Rule("thermal", two_strike=True),
        # A GPU slowed by its own protection: cooling or power, not the GPU itself.
        Rule("gpu-throttle", two_strike=True, remediation="maintenance"),
        # Opened by hand: take the node out, the operator decides whether to replace it.
        Rule("operator-repair", severity="critical", remediation="maintenance"),
    )
}


@dataclass(frozen=True)
class RuleBook:
    rules: dict[str, Rule] = field(default_factory=lambda: dict(DEFAULT_RULES))
    two_strike_window_s: float = 600.0

    def rule(self, check: str) -> Rule:
        return self.rules.get(check) or self.rules.get("*") or Rule("*")

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Mapping[str, Any]] | None = None,
                  two_strike_window_s: float = 600.0) -> RuleBook:
        """The defaults with ``overrides`` merged per check (unknown keys are an error)."""
        rules = dict(DEFAULT_RULES)
        allowed = {"severity", "two_strike", "remediation"}
        for check, values in (overrides or {}).items():
            unknown = set(values) - allowed
            if unknown:
                raise ValidationError(f"rule {check!r}: unknown keys {sorted(unknown)}; "
                                      f"allowed: {sorted(allowed)}")
            base = rules.get(check) or Rule(check)
            rules[check] = replace(base, check=check, **dict(values))
        return cls(rules, two_strike_window_s)


_current = RuleBook()


def configure(book: RuleBook) -> None:
    """Set the process's rule book (the app and the conductor do it from settings)."""
    global _current
    _current = book


def current() -> RuleBook:
    return _current


def configure_from(settings: Settings) -> None:
    """The rule book from ``health_rules`` and ``health_two_strike_window_s``."""
    configure(RuleBook.from_dict(
        {check: dict(values) for check, values in settings.health_rules.items()},
        settings.health_two_strike_window_s))
