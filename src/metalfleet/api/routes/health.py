"""Health routes: node health and reports, signals, repair tickets.

Everyone reads through the access policy (metalfleet/policy.py): a tenant member reads its
own nodes' signals and tickets from its current tenancy only, never a previous tenant's;
operators and admins write.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from sqlalchemy import select

from metalfleet import policy
from metalfleet.api.deps import READ, WRITE, Caller, Context, DbSession, require
from metalfleet.api.routes.node_credentials import Reporter
from metalfleet.core.errors import PermissionDeniedError
from metalfleet.db.health_models import RepairTicket
from metalfleet.health import engine, intake, listing, revalidation, tickets
from metalfleet.health import schemas as hs
from metalfleet.inventory.lifecycle import load_node
from metalfleet.inventory.schemas import Page, Role
from metalfleet.inventory.tokens import Principal

router = APIRouter(tags=["health"])
reader = Depends(require(READ, "reading node health"))
writer = Depends(require(WRITE, "changing node health"))


def _node_health(session: DbSession, caller: Principal, name: str) -> hs.NodeHealthOut:
    node = policy.node(session, caller, name)
    scope = policy.scoped(caller)
    return hs.node_health_out(node, engine.node_signals(session, node.id, scope),
                              tickets.open_ticket_of(session, node.id, scope))


@router.get("/v1/nodes/{name}/health", response_model=hs.NodeHealthOut,
            dependencies=[reader])
def node_health(session: DbSession, caller: Caller, name: str) -> hs.NodeHealthOut:
    """The node's health, its active signals with their evidence, and its open ticket."""
    return _node_health(session, caller, name)


@router.post("/v1/nodes/{name}/health-reports", response_model=hs.NodeHealthOut)
def health_report(session: DbSession, context: Context, name: str, body: hs.HealthReportIn,
                  caller: Principal = Reporter) -> hs.NodeHealthOut:
    """A source's findings (``metalfleet-agent monitor`` posts here, with the node's own
    monitor credential; or an operator); remediation is at once."""
    if caller.role is Role.NODE and body.source != "agent":  # it cannot pose as the BMC
        raise PermissionDeniedError("a node monitor credential reports source 'agent' only")
    node = load_node(session, name)
    intake.report(session, node, body.source, [f.to_finding() for f in body.findings],
                  checks_run=body.checks_run, actor=caller.actor)
    context.wake_conductor()  # a spare's deploy or a node's undeploy may be queued
    # The answer goes through the policy like any read: a monitor credential (the tenant has
    # root where it lives) reads no signal or ticket, not even a previous tenant's, and no
    # maintenance reason; an operator reads them all.
    scope = policy.scoped(caller)
    out = hs.node_health_out(node, engine.node_signals(session, node.id, scope),
                             tickets.open_ticket_of(session, node.id, scope))
    if caller.role is Role.NODE:
        out.maintenance_reason = None
    return out


@router.get("/v1/health/signals", response_model=Page[hs.SignalOut], dependencies=[reader])
def list_signals(session: DbSession, caller: Caller, node: str | None = None,
                 status: str | None = None, check: str | None = None,
                 limit: int = Query(100, ge=1, le=1000), cursor: str | None = None
                 ) -> dict[str, Any]:
    rows, next_cursor = listing.list_signals(session, node=node, status=status, check=check,
                                             limit=limit, cursor=cursor,
                                             scope=policy.scoped(caller))
    return {"items": [hs.signal_out(s, name) for s, name in rows], "next": next_cursor}


@router.get("/v1/repair-tickets", response_model=Page[hs.TicketOut], dependencies=[reader])
def list_tickets(session: DbSession, caller: Caller, status: str | None = None,
                 node: str | None = None, limit: int = Query(100, ge=1, le=1000),
                 cursor: str | None = None) -> dict[str, Any]:
    rows, next_cursor = tickets.list_tickets(session, status=status, node=node, limit=limit,
                                             cursor=cursor, scope=policy.scoped(caller))
    return {"items": [hs.ticket_out(t) for t in rows], "next": next_cursor}


@router.post("/v1/repair-tickets", response_model=hs.TicketOut, status_code=201,
             dependencies=[writer])
def open_ticket(session: DbSession, caller: Caller, context: Context, body: hs.TicketIn,
                response: Response) -> hs.TicketOut:
    """Open a ticket by hand: the node is drained and put in maintenance."""
    ticket = revalidation.open_by_operator(session, body.node, body.component, body.summary,
                                           actor=caller.actor)
    response.headers["Location"] = f"/v1/repair-tickets/{ticket.id}"
    context.wake_conductor()
    return hs.ticket_out(ticket)


@router.get("/v1/repair-tickets/{ticket_id}", response_model=hs.TicketOut,
            dependencies=[reader])
def show_ticket(session: DbSession, caller: Caller, ticket_id: str) -> hs.TicketOut:
    return hs.ticket_out(policy.load(
        session, caller, select(RepairTicket).where(RepairTicket.id == ticket_id),
        tickets.missing_ticket(ticket_id)))


@router.post("/v1/repair-tickets/{ticket_id}/resolve", response_model=hs.TicketOut,
             dependencies=[writer])
def resolve_ticket(session: DbSession, caller: Caller, context: Context, ticket_id: str,
                   body: hs.ResolveIn) -> hs.TicketOut:
    """The node was repaired: its signals clear and re-validation starts; the ticket
    resolves when the acceptance run passes."""
    ticket = revalidation.resolve_by_operator(session, ticket_id, body.note,
                                              actor=caller.actor)
    context.wake_conductor()
    return hs.ticket_out(ticket)
