"""Where every health source reports: findings become signals, then the node is evaluated.

The agent's in-band checks, BMC sweeps, Alertmanager and operators call :func:`report`; the
signals it writes are keyed (node, source, check, component). Evaluation and remediation
(drain, maintenance, ticket, spare) happen synchronously in the caller's transaction, so a
critical finding has the node drained by the time the caller commits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from metalfleet.core import safe_text
from metalfleet.core.errors import ValidationError
from metalfleet.db import health_models as hm
from metalfleet.db import models as m
from metalfleet.db.base import as_utc, utcnow
from metalfleet.health import engine, rules
from metalfleet.health.findings import SOURCES, Finding
from metalfleet.inventory import events


def _check_source(source: str) -> None:
    if source not in SOURCES:
        raise ValidationError(f"source must be one of {', '.join(SOURCES)}, not {source!r}",
                              field="source")


def safe_finding(finding: Finding) -> Finding:
    """The finding with check and component reduced to safe text (core/safe_text.py).

    The API refuses unsafe ones (422); BMC sweeps and alert labels come here unchecked, and
    components end up in drain reasons and scheduler commands."""
    check = safe_text.sanitize_token(finding.check, safe_text.CHECK_MAX) or "unknown"
    component = safe_text.sanitize_component(finding.component)
    if check == finding.check and component == finding.component:
        return finding
    return dataclasses.replace(finding, check=check, component=component)


def lock_node(session: Session, node: m.Node) -> None:
    """Serialize reports on one node (PostgreSQL row lock; SQLite has one writer anyway)."""
    session.execute(select(m.Node.id).where(m.Node.id == node.id).with_for_update())


def active_signals(session: Session, node_id: str, source: str | None = None
                   ) -> list[hm.HealthSignal]:
    statement = select(hm.HealthSignal).where(hm.HealthSignal.node_id == node_id,
                                              hm.HealthSignal.status == "active")
    if source is not None:
        statement = statement.where(hm.HealthSignal.source == source)
    return list(session.scalars(statement.order_by(hm.HealthSignal.first_seen)))


def _upsert(session: Session, node: m.Node, source: str, finding: Finding,
            existing: hm.HealthSignal | None, book: rules.RuleBook, actor: str
            ) -> hm.HealthSignal:
    now = utcnow()
    if existing is None:
        signal = hm.HealthSignal(node_id=node.id, source=source, check=finding.check,
                                 component=finding.component, severity=finding.severity,
                                 message=finding.message, evidence=finding.evidence,
                                 strikes=1, first_seen=now, last_seen=now)
        session.add(signal)
        events.record(session, node=node, kind="health", actor=actor,
                      message=f"{source} reports {finding.check}"
                      + (f" on {finding.component}" if finding.component else "")
                      + f" ({finding.severity}): {finding.message}",
                      data={"signal": {"source": source, **finding.to_dict()}})
        return signal
    window = timedelta(seconds=book.two_strike_window_s)
    if book.rule(finding.check).two_strike and now - as_utc(existing.last_seen) > window:
        # The earlier sighting is too old to count: this is a first strike again.
        existing.strikes = 1
        existing.first_seen = now
    else:
        existing.strikes += 1
    existing.severity = finding.severity
    existing.message = finding.message
    existing.evidence = finding.evidence
    existing.last_seen = now
    return existing


def _clear(session: Session, node: m.Node, signal: hm.HealthSignal, actor: str,
           why: str = "cleared") -> None:
    signal.status = "cleared"
    signal.cleared_at = utcnow()
    events.record(session, node=node, kind="health", actor=actor,
                  message=f"{signal.source} {signal.check}"
                  + (f" on {signal.component}" if signal.component else "") + f" {why}",
                  data={"signal_id": signal.id, "check": signal.check,
                        "component": signal.component, "source": signal.source})


def report(
    session: Session,
    node: m.Node,
    source: str,
    findings: Sequence[Finding],
    *,
    checks_run: Iterable[str] | None = None,
    actor: str,
) -> None:
    """Record ``findings`` from ``source`` on ``node``; clear what ``checks_run`` found fine.

    Every finding upserts its active signal (a new one starts at one strike, a repeat adds
    one). With ``checks_run``, the node's active signals from this source whose check ran
    but found nothing are cleared. The node is then evaluated and remediated."""
    _check_source(source)
    lock_node(session, node)
    book = rules.current()
    active = {(s.check, s.component): s for s in active_signals(session, node.id, source)}
    seen: set[tuple[str, str]] = set()
    for finding in map(safe_finding, findings):
        key = (finding.check, finding.component)
        if key in seen:
            continue  # one sighting per report, however many lines showed it
        active[key] = _upsert(session, node, source, finding, active.get(key), book, actor)
        seen.add(key)
    if checks_run is not None:
        ran = {safe_text.sanitize_token(c, safe_text.CHECK_MAX) for c in checks_run}
        for key, signal in active.items():
            if key not in seen and signal.check in ran:
                _clear(session, node, signal, actor)
    session.flush()
    engine.evaluate(session, node, actor=actor)


def clear(session: Session, node: m.Node, source: str, check: str, component: str, *,
          actor: str) -> bool:
    """Clear one active signal; False when there was none. The node is re-evaluated."""
    _check_source(source)
    check = safe_text.sanitize_token(check, safe_text.CHECK_MAX) or "unknown"
    component = safe_text.sanitize_component(component)  # as report stored it
    lock_node(session, node)
    signal = session.scalar(select(hm.HealthSignal).where(
        hm.HealthSignal.node_id == node.id, hm.HealthSignal.source == source,
        hm.HealthSignal.check == check, hm.HealthSignal.component == component,
        hm.HealthSignal.status == "active"))
    if signal is None:
        return False
    _clear(session, node, signal, actor)
    session.flush()
    engine.evaluate(session, node, actor=actor)
    return True


def clear_all(session: Session, node: m.Node, *, actor: str, why: str,
              source: str | None = None) -> int:
    """Clear every active signal of the node (from ``source``); how many were cleared."""
    lock_node(session, node)
    signals = active_signals(session, node.id, source)
    for signal in signals:
        _clear(session, node, signal, actor, why)
    session.flush()
    engine.evaluate(session, node, actor=actor)
    return len(signals)
