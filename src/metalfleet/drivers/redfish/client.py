"""Connections to Redfish BMCs through sushy, and the translation of every failure to DriverError.

A node's BMC address is ``http(s)://host[:port]/redfish/v1/Systems/<id>`` (or just
``https://host[:port]`` for a BMC with exactly one system). Connections (a sushy root object,
with its Redfish session) are cached per address, user and password in a small LRU, so a
conductor does not open a new BMC session for every call: BMCs allow only a few.

Passwords never reach a message or a log line: messages are built from our own words and
the BMC's status code, and are scrubbed of the password as a last guard.
"""

from __future__ import annotations

import hashlib
import logging
import re
import ssl
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
import sushy
from sushy import exceptions as sushy_exc

from metalfleet.core.errors import DriverError
from metalfleet.drivers.base import BmcCredentials, NodeContext

LOG = logging.getLogger(__name__)

BmcErrorKind = Literal["auth_failed", "unreachable", "protocol_error", "tls_error"]
AUTH_TYPES = ("auto", "basic", "session")
_SYSTEM_PATH = re.compile(r"^/redfish/v1/Systems/(?P<id>[^/]+)/?$")


@dataclass(frozen=True)
class BmcAddress:
    base_url: str
    system_path: str | None  # None: the BMC's only system

    def describe(self) -> str:
        return f"{self.base_url}{self.system_path or ''}"


def parse_bmc_address(address: str) -> BmcAddress:
    """Split a Redfish BMC address into the service's base URL and the system's path."""
    try:
        parts = urlsplit(address.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        parts, host, port = None, None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        raise DriverError(
            "The BMC address is not a Redfish URL: expected "
            "'https://HOST[:PORT]/redfish/v1/Systems/ID'. Fix the node's BMC address.",
            kind="invalid_address")
    if parts.username is not None or parts.password is not None:
        raise DriverError(
            "The BMC address contains credentials: put the user name and password in the "
            "node's BMC credentials, not in the address.", kind="invalid_address")
    netloc = f"[{host}]" if ":" in host else host
    base_url = f"{parts.scheme}://{netloc}" + (f":{port}" if port is not None else "")
    path = parts.path
    if path in ("", "/", "/redfish/v1", "/redfish/v1/"):
        return BmcAddress(base_url, None)
    if _SYSTEM_PATH.match(path) is None or parts.query or parts.fragment:
        raise DriverError(
            f"The BMC address path {path!r} is not a Redfish system: expected "
            "'/redfish/v1/Systems/ID' (GET /redfish/v1/Systems on the BMC lists the ids).",
            kind="invalid_address")
    return BmcAddress(base_url, path.rstrip("/"))


def classify_bmc_error(exc: BaseException) -> BmcErrorKind:
    """Which kind of BMC problem an exception raised by sushy (or requests) is."""
    if isinstance(exc, sushy_exc.AccessError):
        return "auth_failed"
    chain = list(_exception_chain(exc))
    if any(isinstance(e, requests.exceptions.SSLError | ssl.SSLError) for e in chain):
        return "tls_error"
    if isinstance(exc, sushy_exc.ConnectionError):
        text = str(exc)
        if "SSLError" in text or "CERTIFICATE_VERIFY_FAILED" in text:
            return "tls_error"
        return "unreachable"
    if any(isinstance(e, requests.exceptions.ConnectionError | requests.exceptions.Timeout)
           for e in chain):
        return "unreachable"
    return "protocol_error"


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


class RedfishClient:
    """Opens (and caches) sushy connections to BMCs and yields their ComputerSystem."""

    def __init__(
        self,
        *,
        read_timeout: float = 15.0,
        connect_timeout: float = 5.0,
        retries: int = 2,
        retry_delay: float = 0.5,
        cache_size: int = 32,
        auth_type: str = "auto",
    ) -> None:
        if auth_type not in AUTH_TYPES:
            raise ValueError(f"auth_type must be one of {AUTH_TYPES}")
        self.read_timeout = read_timeout
        self.connect_timeout = connect_timeout
        self.retries = max(1, retries)
        self.retry_delay = retry_delay
        self.cache_size = cache_size
        self.auth_type = auth_type
        self._lock = threading.Lock()
        self._roots: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    @contextmanager
    def system(self, node: NodeContext, action: str) -> Iterator[Any]:
        """Yield the node's sushy System; any failure inside becomes a DriverError.

        ``action`` names what the caller is doing ("read the power state"), for messages.
        """
        bmc = node.bmc
        address = parse_bmc_address(bmc.address)
        auth_type = str(node.driver_info.get("redfish_auth_type", self.auth_type))
        if auth_type not in AUTH_TYPES:
            raise DriverError(f"driver_info redfish_auth_type must be one of "
                              f"{', '.join(AUTH_TYPES)}.", kind="invalid_config")
        verify: bool | str = bmc.verify_tls
        ca_bundle = node.driver_info.get("redfish_ca_bundle")
        if bmc.verify_tls and ca_bundle:
            verify = str(ca_bundle)
        key = (address.base_url, bmc.username or "", _digest(bmc.password), verify, auth_type)
        stage = "connect"
        try:
            root = self._root(key, address, bmc, verify, auth_type)
            stage = "system"
            system = root.get_system(address.system_path)
            stage = "operation"
            yield system
        except DriverError:
            raise
        except Exception as exc:
            kind = classify_bmc_error(exc)
            if kind != "protocol_error" or stage == "connect":
                self._forget(key)
            detail = _describe(kind, stage, exc, address, bmc, action)
            raise DriverError(_scrub(detail, bmc.password), kind=kind,
                              address=address.describe()) from exc

    def close(self) -> None:
        """Close every cached connection (logs out of the BMC sessions)."""
        with self._lock:
            roots = list(self._roots.values())
            self._roots.clear()
        for root in roots:
            _close_root(root)

    def _root(self, key: tuple[Any, ...], address: BmcAddress, bmc: BmcCredentials,
              verify: bool | str, auth_type: str) -> Any:
        with self._lock:
            root = self._roots.get(key)
            if root is not None:
                self._roots.move_to_end(key)
                return root
        root = self._connect(address, bmc, verify, auth_type)
        evicted = []
        with self._lock:
            self._roots[key] = root
            while len(self._roots) > self.cache_size:
                evicted.append(self._roots.popitem(last=False)[1])
        for old in evicted:
            _close_root(old)
        return root

    def _connect(self, address: BmcAddress, bmc: BmcCredentials, verify: bool | str,
                 auth_type: str) -> Any:
        LOG.debug("opening Redfish connection to %s as %r (auth %s)",
                  address.base_url, bmc.username, auth_type)
        options: dict[str, Any] = {
            "verify": verify,
            "read_timeout": self.read_timeout,
            "connect_timeout": self.connect_timeout,
            "server_side_retries": self.retries,
            "server_side_retries_delay": self.retry_delay,
        }
        if auth_type == "basic":
            options["auth"] = sushy.auth.BasicAuth(bmc.username, bmc.password)
        elif auth_type == "session":
            options["auth"] = sushy.auth.SessionAuth(bmc.username, bmc.password)
        else:
            options.update(username=bmc.username, password=bmc.password)
        return sushy.Sushy(address.base_url, **options)

    def _forget(self, key: tuple[Any, ...]) -> None:
        with self._lock:
            root = self._roots.pop(key, None)
        if root is not None:
            _close_root(root)


def _digest(password: str | None) -> str:
    return hashlib.sha256((password or "").encode()).hexdigest()


def _close_root(root: Any) -> None:
    # sushy has no public close: it logs out in __del__. Do it now, once, and quietly.
    auth, root._auth = getattr(root, "_auth", None), None
    try:
        if auth is not None:
            auth.close()
    except Exception:  # the BMC may be gone; the session will expire there
        LOG.debug("ignoring an error while closing a Redfish session", exc_info=False)
    finally:
        conn = getattr(root, "_conn", None)
        if conn is not None:
            conn.close()


def _describe(kind: BmcErrorKind, stage: str, exc: BaseException, address: BmcAddress,
              bmc: BmcCredentials, action: str) -> str:
    where = address.base_url
    if kind == "auth_failed":
        return (f"Redfish authentication failed at {where} for user {bmc.username!r} "
                f"(HTTP {_status(exc)}) while trying to {action}. "
                "Check the node's BMC username and password.")
    if kind == "tls_error":
        return (f"TLS verification of the BMC at {where} failed while trying to {action}. "
                "Install the BMC's CA certificate (driver_info redfish_ca_bundle) or set "
                "verify_tls to false for this node.")
    if kind == "unreachable":
        cause = "timed out" if _timed_out(exc) else "connection refused or failed"
        return (f"The BMC at {where} is unreachable ({cause}) while trying to {action}. "
                "Check the BMC address and port, and that the management network is "
                "reachable from the conductor.")
    if stage == "connect":
        return (f"{where} answered but is not a Redfish service: no valid service root at "
                f"/redfish/v1/ ({_short(exc)}). Check that the address points at the BMC's "
                "Redfish endpoint.")
    if stage == "system" and isinstance(exc, sushy_exc.ResourceNotFoundError):
        return (f"The BMC at {where} has no system {address.system_path}. Check the system "
                "id in the BMC address (GET /redfish/v1/Systems lists them).")
    if isinstance(exc, sushy_exc.HTTPError):
        return (f"The BMC at {where} refused to {action}: HTTP {exc.status_code} "
                f"{exc.detail or exc.code}.")
    return (f"The BMC at {where} sent a malformed Redfish response while trying to {action} "
            f"({_short(exc)}).")


def _status(exc: BaseException) -> str:
    code = getattr(exc, "status_code", None)
    return str(code) if code is not None else "401"


def _timed_out(exc: BaseException) -> bool:
    return any(isinstance(e, requests.exceptions.Timeout | TimeoutError)
               for e in _exception_chain(exc)) or "timed out" in str(exc).lower()


def _short(exc: BaseException) -> str:
    if isinstance(exc, sushy_exc.HTTPError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, ValueError) and not isinstance(exc, sushy_exc.SushyError):
        return "the body is not JSON"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def _scrub(text: str, password: str | None) -> str:
    if password and len(password) >= 3:
        return text.replace(password, "***")
    return text


_default_client: RedfishClient | None = None
_default_lock = threading.Lock()


def default_client() -> RedfishClient:
    """The process-wide client (one connection cache) that the interfaces share by default."""
    global _default_client
    with _default_lock:
        if _default_client is None:
            _default_client = RedfishClient()
        return _default_client
