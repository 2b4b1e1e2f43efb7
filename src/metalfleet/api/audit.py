"""Record every mutating API and dashboard call in the append-only audit log.

A pure ASGI middleware (no BaseHTTPMiddleware: it must not buffer bodies or break streaming).
It gives each HTTP request a request id (the caller's ``X-Request-ID`` when it is short and
safe, else a fresh one) and echoes it in the response. For POST, PUT, PATCH and DELETE it
writes one ``audit_log`` row once the response has gone out: who (``request.state.principal``,
set by api/deps.get_principal and the dashboard's POST guard; ``anonymous`` when absent), from
where, what (method, path without the query string, the target resource) and how it ended
(the status). Refused calls are recorded too: they are the interesting ones.

Not recorded: the agent protocol (``/v1/agent/*``, a heartbeat every 2 s per node) and the
anonymous boot paths (``/v1/boot/*``, ``/v1/nocloud/*``); the agent's security events cover
them. Health reports from a node's own credential are routine telemetry (every 30 s per
node) and are recorded only when refused; reports sent with an operator token are recorded.

Never stored: bodies, headers (Authorization, Cookie), query strings. The only thing read from
a body is a top-level ``name`` (JSON) or ``name``/``node`` (dashboard form) when the path names
no resource (a create), and only if it looks like a resource name.

The row is written with its own short transaction in a worker thread after the answer has
been sent, so a slow or failing audit write never changes or delays the answer; a failure is
logged (without the request's data beyond method and path) and the request goes on.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metalfleet.db.audit_models import AuditEntry
from metalfleet.db.base import utcnow
from metalfleet.runtime import AppContext

log = logging.getLogger(__name__)

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_AUDITED = ("/v1/agent/", "/v1/boot/", "/v1/nocloud/")
HEALTH_REPORT = re.compile(r"^/v1/nodes/[^/]+/health-reports/?$")
REQUEST_ID_HEADER = "X-Request-ID"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,62}$")
BODY_PEEK_LIMIT = 64 * 1024  # enough for a create's body; big uploads are not kept
IGNORED_PARAMS = frozenset({"action", "item", "filename"})
ANONYMOUS = "anonymous"


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID if it is short and safe, else a new random one."""
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            candidate = bytes(value).decode("latin-1")
            if SAFE_REQUEST_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


def is_audited(method: str, path: str) -> bool:
    return method in MUTATING and not path.startswith(NOT_AUDITED)


def _clip(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]


def target_from(path_params: Mapping[str, Any], content_type: str, body: bytes) -> str | None:
    """The resource the call names: a node first, else the path's first name, else a create's
    ``name`` from its body (only a value that looks like a name: nothing else is kept)."""
    params = {k: str(v) for k, v in path_params.items() if k not in IGNORED_PARAMS}
    if "node" in params:
        return params["node"][:255]
    if params:
        return next(iter(params.values()))[:255]
    names: list[str] = []
    try:
        if content_type.startswith("application/json"):
            data = json.loads(body) if body else None
            if isinstance(data, dict) and isinstance(data.get("name"), str):
                names = [data["name"]]
        elif content_type.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode(), max_num_fields=200)
            names = form.get("name") or form.get("node") or []
    except (ValueError, UnicodeDecodeError):
        return None
    safe = [n for n in names if SAFE_NAME.match(n)]
    return ",".join(safe)[:255] or None


def principal_fields(principal: Any) -> dict[str, str | None]:
    """Name, role, tenant and node of whoever called; read defensively (several kinds)."""
    if principal is None:
        return {"principal": ANONYMOUS, "role": None, "tenant": None, "node": None}
    role = getattr(principal, "role", None)
    return {
        "principal": _clip(getattr(principal, "name", None) or ANONYMOUS, 127) or ANONYMOUS,
        "role": _clip(getattr(role, "value", role), 16),
        "tenant": _clip(getattr(principal, "tenant_name", None), 63),
        "node": _clip(getattr(principal, "node", None) or getattr(principal, "node_name", None)
                      or getattr(principal, "node_id", None), 63),
    }


def _routine_node_report(path: str, status: int, fields: Mapping[str, str | None]) -> bool:
    """A node credential's accepted health report: telemetry, not an administrative act."""
    from_node = fields["node"] is not None or fields["role"] == "node"
    return from_node and status < 400 and bool(HEALTH_REPORT.match(path))


def install(app: Any, context: AppContext) -> None:
    """Wrap the app (outside the routes and error handlers: it sees the final status)."""
    app.add_middleware(AuditMiddleware, context=context)


class AuditMiddleware:
    """Request ids for every HTTP call; an audit row for every mutating one."""

    def __init__(self, app: ASGIApp, context: AppContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        scope.setdefault("state", {})  # shared with Request.state: the principal lands here
        method = str(scope.get("method", "")).upper()
        path = str(scope.get("path", ""))
        audited = is_audited(method, path)
        status = 500  # what the caller sees if the app fails before answering
        peeked = bytearray()

        async def peek() -> Message:
            message = await receive()
            if message["type"] == "http.request" and len(peeked) <= BODY_PEEK_LIMIT:
                peeked.extend(message.get("body", b"")[: BODY_PEEK_LIMIT + 1 - len(peeked)])
            return message

        async def answer(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, peek if audited else receive, answer)
        finally:
            if audited:
                body = bytes(peeked) if len(peeked) <= BODY_PEEK_LIMIT else b""
                await self._record(scope, method, path, status, request_id, body)

    async def _record(self, scope: Scope, method: str, path: str, status: int,
                      request_id: str, body: bytes) -> None:
        try:
            fields = principal_fields(scope.get("state", {}).get("principal"))
            if _routine_node_report(path, status, fields):
                return
            headers = {k.decode("latin-1"): v.decode("latin-1")
                       for k, v in scope.get("headers", []) if k == b"content-type"}
            client = scope.get("client")
            entry = AuditEntry(
                time=utcnow(), **fields,
                source=_clip(client[0], 64) if client else None,
                method=method[:8], path=path[:512],
                target=target_from(scope.get("path_params") or {},
                                   headers.get("content-type", ""), body),
                status=status, request_id=request_id,
            )
            await anyio.to_thread.run_sync(self._write, entry)
        except Exception as exc:  # the audit write must never break the answered request
            # Only the class: a database error's text would repeat the row's values.
            log.error("audit: could not record %s %s (%s)", method, path[:200],
                      type(exc).__name__)

    def _write(self, entry: AuditEntry) -> None:
        with self.context.db.session() as session:
            session.add(entry)
