"""What one metalfleet process holds while it runs: the database, the credential cipher,
the settings, and what plug-ins (the lab) registered when they started.

The API, the dashboard, the conductor and plug-ins all receive this one object; nothing in it
is HTTP-specific, so it lives outside ``api/``. A plug-in registers its routers before the app
is built and keeps its runtime objects in ``plugins`` under its own name; code that needs a
plug-in asks for it by name and gets a clear error when that process did not start it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from metalfleet.config import Settings
from metalfleet.db.session import Database
from metalfleet.secrets import CredentialCipher


@dataclass
class LabAllowance:
    """Set only in a process started with ``--lab``: the lab's shortcuts (the ``lab``
    hardware type, synthetic hardware roots, ``file://`` images) are accepted there, and
    only for paths inside ``root`` (the lab's own data folder)."""

    root: Path

    def contains(self, path: str | Path) -> bool:
        try:
            Path(path).resolve().relative_to(self.root.resolve())
        except ValueError:
            return False
        return True


@dataclass
class AppContext:
    db: Database
    cipher: CredentialCipher
    settings: Settings
    wake_conductor: Callable[[], None] = lambda: None
    # The lab plug-in sets this when it starts; None in every production process.
    lab: LabAllowance | None = None
    # Routers plug-ins add to the API (registered before create_app runs).
    routers: list[APIRouter] = field(default_factory=list)
    # The /metrics collector registry, made on the first scrape.
    metrics_registry: Any = None
    # Plug-ins' runtime objects, by plug-in name (the lab's handle under "lab").
    plugins: dict[str, Any] = field(default_factory=dict)
