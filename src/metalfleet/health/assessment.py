"""From active signals to a node's health: pure, no database.

- failed: any signal that counts as critical (a critical finding; for two-strike checks only
  from the second sighting within the window on);
- degraded: any warning, or a two-strike check's first critical sighting;
- ok: nothing active.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from metalfleet.health.rules import REMEDIATIONS, RuleBook


class SignalLike(Protocol):
    @property
    def check(self) -> str: ...
    @property
    def component(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def strikes(self) -> int: ...
    @property
    def message(self) -> str: ...


@dataclass(frozen=True)
class Assessment:
    health: str  # ok | degraded | failed
    critical: list[SignalLike]  # the signals that make the node failed
    degraded: list[SignalLike]  # warnings and first strikes
    remediation: str  # the strongest remediation among the critical signals' rules

    @property
    def cause(self) -> SignalLike | None:
        """The signal named in drain and maintenance reasons: the first critical one."""
        return self.critical[0] if self.critical else None


def counts_critical(signal: SignalLike, book: RuleBook) -> bool:
    rule = book.rule(signal.check)
    if rule.severity_of(signal.severity) != "critical":
        return False
    return not rule.two_strike or signal.strikes >= 2


def assess(signals: Sequence[SignalLike], book: RuleBook) -> Assessment:
    critical = [s for s in signals if counts_critical(s, book)]
    degraded = [s for s in signals if not counts_critical(s, book)]
    if critical:
        remediation = min((book.rule(s.check).remediation for s in critical),
                          key=REMEDIATIONS.index)
        return Assessment("failed", critical, degraded, remediation)
    return Assessment("degraded" if degraded else "ok", [], degraded, "none")


def describe(signal: SignalLike) -> str:
    """``gpu-xid on GPU3`` (or just the check for the node as a whole)."""
    return f"{signal.check} on {signal.component}" if signal.component else signal.check
