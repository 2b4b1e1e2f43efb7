"""IPMI sessions through pyghmi, and the translation of every failure to DriverError.

A node's BMC address is ``ipmi://host[:port]`` (port 623 by default). One pyghmi ``Command``
(one IPMI session) is kept per (host, port, user, password) for the life of the process and
reused, one call at a time: building a second ``Command`` for a BMC that already has a live
session makes pyghmi 1.6 wait forever for a login that never comes, and pyghmi keeps its
sessions alive on its own, so they are never evicted here (an entry is a few hundred bytes).

Every pyghmi failure becomes a DriverError whose ``kind`` is one of the Redfish driver's
kinds (auth_failed, unreachable, protocol_error), so power sync and the API report both
protocols the same way. Passwords never reach a message.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from metalfleet.core.errors import DriverError
from metalfleet.drivers.base import NodeContext

LOG = logging.getLogger(__name__)
DEFAULT_PORT = 623
_AUTH_WORDS = ("password", "unauthorized", "rakp", "privilege", "unknown user",
               "invalid user", "insufficient")
_UNREACHABLE_WORDS = ("timeout", "timed out", "no longer connected", "unreachable",
                      "connection refused", "network is", "no route")


@dataclass(frozen=True)
class IpmiAddress:
    host: str
    port: int

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ipmi://{host}:{self.port}"


def parse_ipmi_address(address: str) -> IpmiAddress:
    try:
        parts = urlsplit(address.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        parts, host, port = None, None, None
    if parts is None or parts.scheme != "ipmi" or not host:
        raise DriverError("The BMC address is not an IPMI address: expected "
                          "'ipmi://HOST[:PORT]' (port 623 by default).", kind="invalid_address")
    if parts.username is not None or parts.password is not None:
        raise DriverError("The BMC address contains credentials: put the user name and "
                          "password in the node's BMC credentials.", kind="invalid_address")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise DriverError(f"An IPMI address has no path: use ipmi://{host}:{port or 623}.",
                          kind="invalid_address")
    return IpmiAddress(host, port or DEFAULT_PORT)


def classify_ipmi_error(exc: BaseException) -> str:
    text = str(exc).lower() if str(exc) not in ("", "None") else "timeout"
    if any(word in text for word in _AUTH_WORDS):
        return "auth_failed"
    if isinstance(exc, OSError) or any(word in text for word in _UNREACHABLE_WORDS):
        return "unreachable"
    return "protocol_error"


def _describe(kind: str, where: str, username: str | None, action: str,
              exc: BaseException) -> str:
    if kind == "auth_failed":
        return (f"IPMI authentication failed at {where} for user {username!r} while trying "
                f"to {action}. Check the node's BMC username and password.")
    if kind == "unreachable":
        return (f"The BMC at {where} is unreachable (no IPMI answer) while trying to "
                f"{action}. Check the BMC address and port, that IPMI over LAN is enabled, "
                "and that the management network is reachable from the conductor.")
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return f"The BMC at {where} refused to {action}: {detail}."


class _Session:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.command: Any = None


class IpmiClient:
    """Keeps pyghmi sessions; ``command()`` yields a ``pyghmi.ipmi.command.Command``."""

    def __init__(self, busy_timeout_s: float = 60.0) -> None:
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._sessions: dict[tuple[Any, ...], _Session] = {}

    def _session(self, key: tuple[Any, ...]) -> _Session:
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                session = self._sessions[key] = _Session()
            return session

    @contextmanager
    def command(self, node: NodeContext, action: str) -> Iterator[Any]:
        address = parse_ipmi_address(node.bmc.address)
        password = node.bmc.password or ""
        user = node.bmc.username or ""
        key = (address.host, address.port, user,
               hashlib.sha256(password.encode()).hexdigest())
        session = self._session(key)
        if not session.lock.acquire(timeout=self.busy_timeout_s):
            raise DriverError(
                f"The BMC at {address.describe()} is still busy with an earlier IPMI call "
                f"after {self.busy_timeout_s:g} s while trying to {action}; it may be hung.",
                kind="unreachable", address=address.describe())
        try:
            if session.command is None:
                from pyghmi.ipmi import command as ipmi_command  # type: ignore[import-untyped]
                from pyghmi.ipmi.private.session import Session  # type: ignore[import-untyped]

                # a login that failed earlier may linger there and make pyghmi wait forever
                Session.initting_sessions.pop(
                    (address.host, user, password, address.port, None), None)
                LOG.debug("opening an IPMI session to %s as %r", address.describe(), user)
                session.command = ipmi_command.Command(
                    bmc=address.host, userid=user, password=password, port=address.port)
            yield session.command
        except DriverError:
            raise
        except Exception as exc:
            kind = classify_ipmi_error(exc)
            if kind != "protocol_error":
                session.command = None
            detail = _describe(kind, address.describe(), node.bmc.username, action, exc)
            if password and len(password) >= 3:
                detail = detail.replace(password, "***")
            raise DriverError(detail, kind=kind, address=address.describe()) from exc
        finally:
            session.lock.release()


def check(response: dict[str, Any], what: str) -> dict[str, Any]:
    """pyghmi answers some failures with {'error': ...} instead of raising."""
    if isinstance(response, dict) and response.get("error"):
        from pyghmi.exceptions import IpmiException  # type: ignore[import-untyped]

        raise IpmiException(f"{what}: {response['error']}")
    return response


_default_client: IpmiClient | None = None
_default_lock = threading.Lock()


def default_client() -> IpmiClient:
    """The process-wide client: one IPMI session per BMC, shared by all interfaces."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = IpmiClient()
        return _default_client
