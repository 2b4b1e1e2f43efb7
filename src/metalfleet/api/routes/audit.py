"""The audit log over HTTP: search it (admins only) and export it as JSON lines for a SIEM."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from metalfleet.api.deps import ADMIN, Context, DbSession, require
from metalfleet.inventory import audit
from metalfleet.inventory import schemas as s
from metalfleet.inventory.audit import AuditEntryOut, AuditFilter, Outcome

router = APIRouter(prefix="/v1/audit", tags=["audit"],
                   dependencies=[Depends(require(ADMIN, "reading the audit log"))])

NDJSON = "application/x-ndjson"
METHODS = "^(POST|PUT|PATCH|DELETE|post|put|patch|delete)$"


def audit_filter(
    principal: Annotated[str | None, Query(max_length=127, description="token name")] = None,
    target: Annotated[str | None, Query(max_length=255,
                                        description="the resource, e.g. a node name")] = None,
    method: Annotated[str | None, Query(pattern=METHODS)] = None,
    path: Annotated[str | None, Query(max_length=512, description="path prefix")] = None,
    status: Annotated[int | None, Query(ge=100, le=599)] = None,
    outcome: Annotated[Outcome | None, Query(description="ok: < 400, refused: >= 400")] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> AuditFilter:
    return AuditFilter(principal=principal, target=target, method=method, path_prefix=path,
                       status=status, outcome=outcome, since=since, until=until)


Filter = Annotated[AuditFilter, Depends(audit_filter)]


@router.get("", response_model=s.Page[AuditEntryOut])
def search_audit(session: DbSession, query: Filter, cursor: str | None = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Newest first; pass ``next`` back as ``cursor`` for the next (older) page."""
    rows, next_cursor = audit.search(session, query, cursor=cursor, limit=limit)
    return {"items": [audit.entry_out(row) for row in rows], "next": next_cursor}


@router.get("/export", response_class=StreamingResponse,
            responses={200: {"content": {NDJSON: {}}, "description": "one JSON object a line"}})
def export_audit(context: Context, query: Filter,
                 after: Annotated[int | None, Query(ge=0, description="resume after this id")]
                 = None) -> StreamingResponse:
    """Oldest first, streamed; a SIEM resumes with ``after`` = the last id it stored."""
    return StreamingResponse(audit.export(context.db, query, after=after), media_type=NDJSON)
