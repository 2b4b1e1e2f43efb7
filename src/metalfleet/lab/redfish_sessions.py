"""Redfish sessions of the lab BMC emulator: in memory, bound to the credentials that opened them.

A restart of the emulator forgets them, as a BMC reboot does; sushy then logs in again.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

MAX_SESSIONS = 256


@dataclass(frozen=True)
class Session:
    id: str
    token: str
    username: str
    password: str = field(repr=False)


class SessionStore:
    """Redfish sessions in memory, bound to the credentials that opened them (bounded)."""

    def __init__(self, limit: int = MAX_SESSIONS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._by_token: OrderedDict[str, Session] = OrderedDict()

    def create(self, username: str, password: str) -> Session:
        entry = Session(secrets.token_hex(8), secrets.token_urlsafe(32), username, password)
        with self._lock:
            self._by_token[entry.token] = entry
            while len(self._by_token) > self._limit:
                self._by_token.popitem(last=False)
        return entry

    def by_token(self, token: str) -> Session | None:
        with self._lock:
            return self._by_token.get(token)

    def by_id(self, session_id: str) -> Session | None:
        with self._lock:
            return next((s for s in self._by_token.values() if s.id == session_id), None)

    def of_user(self, username: str, password: str) -> list[Session]:
        with self._lock:
            return [s for s in self._by_token.values()
                    if (s.username, s.password) == (username, password)]

    def clear(self) -> None:
        """Forget every session (what a BMC reboot does)."""
        with self._lock:
            self._by_token.clear()

    def delete(self, session_id: str) -> bool:
        with self._lock:
            for token, entry in list(self._by_token.items()):
                if entry.id == session_id:
                    del self._by_token[token]
                    return True
        return False
