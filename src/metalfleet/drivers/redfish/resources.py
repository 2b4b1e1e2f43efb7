"""Walking a Redfish tree as plain JSON: links, collections, tolerant field access.

The out-of-band inventory, sensors and logs read Redfish documents as JSON rather than
through sushy's typed resources: vendors (Dell iDRAC, HPE iLO, Supermicro, Lenovo XCC)
disagree on optional properties, on which schema version they speak (``Thermal`` vs
``ThermalSubsystem``, ``StorageControllers`` vs ``Controllers``), and sometimes return
properties sushy's field types refuse. Reading JSON with defaults keeps one odd property
from losing a whole section. The HTTP itself still goes through sushy's connector (its
session, retries, timeouts and TLS settings), see :func:`sushy_fetch`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

JSON = dict[str, Any]
Fetch = Callable[[str], JSON]
"""GET a Redfish path (``/redfish/v1/...``) and return its JSON body; raises on failure."""

MAX_MEMBERS = 512  # a guard against a BMC that lists a collection without end


def link(document: JSON | None, *keys: str) -> str | None:
    """The ``@odata.id`` at ``document[k1][k2]...``, or None."""
    current: Any = document
    for key in keys:
        if not isinstance(current, dict):
            return None
        current = current.get(key)
    if isinstance(current, list):
        current = current[0] if current else None
    if isinstance(current, dict):
        target = current.get("@odata.id")
        return str(target) if isinstance(target, str) and target else None
    return None


def links(document: JSON | None, *keys: str) -> list[str]:
    """Every ``@odata.id`` in the list at ``document[k1][k2]...``."""
    current: Any = document
    for key in keys:
        if not isinstance(current, dict):
            return []
        current = current.get(key)
    if not isinstance(current, list):
        return []
    return [str(item["@odata.id"]) for item in current
            if isinstance(item, dict) and isinstance(item.get("@odata.id"), str)]


def members(fetch: Fetch, collection_path: str | None) -> Iterator[JSON]:
    """The member documents of a collection (members already expanded inline are used as is)."""
    if not collection_path:
        return
    collection = fetch(collection_path)
    for item in list(collection.get("Members") or [])[:MAX_MEMBERS]:
        if not isinstance(item, dict):
            continue
        if len(item) > 1 and "Id" in item:  # $expand-ed by the BMC
            yield item
        elif isinstance(item.get("@odata.id"), str):
            yield fetch(item["@odata.id"])


def member_docs(fetch: Fetch, paths: list[str]) -> Iterator[JSON]:
    for path in paths[:MAX_MEMBERS]:
        yield fetch(path)


def text(document: JSON, *keys: str) -> str | None:
    """The first non-empty string among ``keys`` (trimmed: BMCs pad serials with spaces)."""
    for key in keys:
        value = document.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def number(document: JSON, *keys: str) -> float | None:
    for key in keys:
        value = document.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            return float(value)
    return None


def integer(document: JSON, *keys: str) -> int | None:
    value = number(document, *keys)
    return int(value) if value is not None else None


def status(document: JSON) -> tuple[str | None, str | None]:
    """(State, Health) of a resource's Status."""
    raw = document.get("Status")
    if not isinstance(raw, dict):
        return None, None
    state, health = raw.get("State"), raw.get("Health")
    return (state if isinstance(state, str) else None,
            health if isinstance(health, str) else None)


def absent(document: JSON) -> bool:
    return status(document)[0] == "Absent"


def sushy_fetch(connector: Any) -> Fetch:
    """A :data:`Fetch` over a sushy ``Connector`` (what a sushy resource keeps in ``_conn``)."""

    def fetch(path: str) -> JSON:
        body = connector.get(path=path).json()
        if not isinstance(body, dict):
            raise ValueError(f"{path} did not return a JSON object")
        return body

    return fetch
