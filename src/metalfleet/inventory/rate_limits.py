"""Per-key request counters in the database: a rate limit every API process shares.

Anonymous agent calls (lookup, discovery) need a bound per source address that holds when
several API processes serve the provisioning network, so the counters live in a table
(``rate_counters``): one row per key, holding the current fixed window's number and count.
:func:`hit` counts in its own committed transaction, before the request does anything else,
so a refused or failing request still counts and a flood writes nothing but its counter.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from metalfleet.core.errors import TooManyRequestsError
from metalfleet.db.agent_models import RateCounter
from metalfleet.db.session import Database, rowcount


def hit(db: Database, key: str, *, limit: int, window_s: int = 60, what: str = "requests",
        now: float | None = None) -> int:
    """Count one request for ``key``; TooManyRequestsError past ``limit`` in the window.

    Returns the count so far in this window (this request included).
    """
    key = key[:80]
    moment = time.time() if now is None else now
    period = int(moment // window_s)
    with db.session() as session:
        for _ in range(3):
            same = update(RateCounter).where(RateCounter.key == key,
                                             RateCounter.period == period)
            if rowcount(session.execute(same.values(count=RateCounter.count + 1)
                                        .execution_options(synchronize_session=False))):
                break
            fresh = update(RateCounter).where(RateCounter.key == key,
                                              RateCounter.period < period)
            if rowcount(session.execute(fresh.values(period=period, count=1)
                                        .execution_options(synchronize_session=False))):
                break
            # A new key: drop other keys' stale rows so one-off addresses do not pile up.
            session.execute(delete(RateCounter).where(RateCounter.period < period - 1)
                            .execution_options(synchronize_session=False))
            try:
                with session.begin_nested():
                    session.add(RateCounter(key=key, period=period, count=1))
                    session.flush()
                break
            except IntegrityError:  # another process inserted it first: count there
                continue
        count = int(session.scalar(select(RateCounter.count)
                                   .where(RateCounter.key == key)) or 0)
    if count > limit:
        retry = max(1, int((period + 1) * window_s - moment) + 1)
        raise TooManyRequestsError(
            f"more than {limit} {what} per {window_s} s from this address; wait {retry} s "
            "(the limit is shared by every API process)", retry_after_s=retry)
    return count
