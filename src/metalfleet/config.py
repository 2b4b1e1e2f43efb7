"""Settings, read once from the command line and the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_DIR = Path("./metalfleet-data")
# Nodes of one class a tenant may hold when no quota row says otherwise.
DEFAULT_QUOTA_NODES = 16


def default_quota_from_env() -> int | None:
    """METALFLEET_DEFAULT_QUOTA_NODES: a number, or "unlimited" (not recommended)."""
    text = os.environ.get("METALFLEET_DEFAULT_QUOTA_NODES", "").strip().lower()
    if not text:
        return DEFAULT_QUOTA_NODES
    if text == "unlimited":
        return None
    if not text.isdigit():
        raise ValueError(f"METALFLEET_DEFAULT_QUOTA_NODES={text!r}: a number or 'unlimited'")
    return int(text)


# Agent lookups and discovery reports per source address and minute (inventory/rate_limits.py).
AGENT_LOOKUPS_PER_MINUTE = 30


def agent_lookups_from_env() -> int:
    """METALFLEET_AGENT_LOOKUPS_PER_MINUTE: a positive number (default 30)."""
    text = os.environ.get("METALFLEET_AGENT_LOOKUPS_PER_MINUTE", "").strip()
    if not text:
        return AGENT_LOOKUPS_PER_MINUTE
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"METALFLEET_AGENT_LOOKUPS_PER_MINUTE={text!r}: a positive number")
    return int(text)


def env_flag(name: str) -> bool:
    """A yes/no environment variable: 1, true, yes, on (any case) mean yes."""
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def metrics_tenant_labels_from_env() -> bool:
    """METALFLEET_METRICS_TENANT_LABELS=1 (true/yes/on) puts tenant names on /metrics."""
    text = os.environ.get("METALFLEET_METRICS_TENANT_LABELS", "").strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"METALFLEET_METRICS_TENANT_LABELS={text!r}: true or false")


@dataclass
class Settings:
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    # Public URL of the API as nodes and lab agents reach it (images, callbacks).
    public_url: str | None = None
    conductor_name: str | None = None
    conductor_workers: int = 8
    # A conductor whose heartbeat is older than this is dead; its nodes are taken over.
    conductor_dead_after_s: float = 30.0
    poll_interval_s: float = 1.0
    # A node agent silent for this long fails its step (deploy, clean, ...).
    agent_heartbeat_timeout_s: float = 30.0
    # Health engine (metalfleet.health): the conductor's tick, the two-strike window, and
    # per-check rule overrides {"gpu-xid": {"severity", "two_strike", "remediation"}}.
    health_tick_s: float = 2.0
    health_two_strike_window_s: float = 600.0
    health_rules: dict[str, dict[str, object]] = field(default_factory=dict)
    # BMC sensor health sweep (conductor/bmc_health.py); None: METALFLEET_BMC_HEALTH_INTERVAL_S
    # or 60 s (`up --lab` uses 5 s); 0 turns it off.
    bmc_health_interval_s: float | None = None
    # `up --lab`: how often the lab runs the agent's in-band checks on every lab node.
    lab_health_interval_s: float = 1.0
    # A tenant without a quota row for a class may hold this many nodes of it (None: no limit).
    default_quota_nodes: int | None = field(default_factory=default_quota_from_env)
    # Largest image upload accepted by POST /v1/images/upload.
    max_upload_bytes: int = 64 * 1024**3
    # Largest request body of any other call (api/limits.py): 413 beyond it.
    max_request_bytes: int = 1024**2
    # Agent lookups and discovery reports per source address and minute, shared by every
    # API process (inventory/rate_limits.py); raise it when many nodes sit behind one NAT
    # (METALFLEET_AGENT_LOOKUPS_PER_MINUTE).
    agent_lookups_per_minute: int = field(default_factory=agent_lookups_from_env)
    # /metrics is anonymous: node counts carry a tenant label only when the operator says so.
    metrics_tenant_labels: bool = field(default_factory=metrics_tenant_labels_from_env)
    # TLS (docs/operations.md): metalfleet serves HTTPS itself with a certificate and key, or a
    # proxy in front terminates TLS (METALFLEET_BEHIND_TLS=1). Either way the dashboard cookie
    # is then `Secure`.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    behind_tls: bool = field(default_factory=lambda: env_flag("METALFLEET_BEHIND_TLS"))
    # Dashboard sessions (web/sessions.py): absolute lifetime and idle timeout.
    web_session_max_age_s: float = 12 * 3600.0
    web_session_idle_s: float = 3600.0
    extra: dict[str, str] = field(default_factory=dict)

    def resolved_database_url(self) -> str:
        url = self.database_url or os.environ.get("METALFLEET_DATABASE_URL")
        if url:
            return url
        return f"sqlite:///{(self.data_dir / 'metalfleet.db').resolve()}"

    @property
    def serves_tls(self) -> bool:
        """metalfleet itself terminates TLS (``--tls-cert``/``--tls-key``)."""
        return self.tls_cert is not None

    @property
    def secure_cookies(self) -> bool:
        """Browsers reach us over HTTPS: cookies must never travel in clear text."""
        return self.serves_tls or self.behind_tls

    def resolved_public_url(self) -> str:
        scheme = "https" if self.serves_tls else "http"
        return self.public_url or f"{scheme}://{self.host}:{self.port}"
