"""The dashboard: server-rendered pages at / and /ui/*, signed in with an API token.

Pages refresh their live parts by polling themselves (web/static/app.js swaps the elements
marked ``data-live``); actions post forms that go through the API's node action.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from metalfleet import __version__, policy
from metalfleet.api.deps import Context
from metalfleet.core.errors import AuthenticationError, NotFoundError
from metalfleet.inventory import nodes
from metalfleet.inventory.tokens import Principal
from metalfleet.web import actions, auth, views
from metalfleet.web.filters import install_filters

router = APIRouter(include_in_schema=False)
HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(directory=HERE / "templates")
install_filters(templates.env)
STATIC_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*\.(css|js|svg)$")


def render(request: Request, name: str, caller: Principal | None, status: int = 200,
           **values: Any) -> HTMLResponse:
    values.setdefault("msg", request.query_params.get("msg"))
    values.setdefault("error", request.query_params.get("error"))
    values.update(caller=caller, version=__version__, path=request.url.path)
    return templates.TemplateResponse(request, name, values, status_code=status)


def back(target: str, **flash: str) -> RedirectResponse:
    """Redirect to a local page with this action's flash messages (replacing older ones)."""
    parts = urlsplit(auth.safe_next(target))
    kept = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("msg", "error")]
    query = urlencode(kept + [(k, v) for k, v in flash.items() if v])
    return RedirectResponse(parts.path + (f"?{query}" if query else ""), status_code=303)


def can_write(caller: Principal) -> bool:
    return caller.role in policy.WRITE


def forbidden() -> HTMLResponse:
    return HTMLResponse("cross-site POST refused: the Origin header does not name this server",
                        status_code=403)


def posting_caller(request: Request, context: Context) -> Principal | Response:
    """The caller of a POST from our own pages; else the login page, or 403 cross-origin."""
    caller = auth.caller_or_none(request, context)
    if caller is None:
        return auth.to_login(request)
    request.state.principal = caller  # the audit log records who called, refused or not
    if not auth.same_origin(request):
        return forbidden()
    return caller


@router.get("/ui/static/{filename}")
def static(filename: str) -> Response:
    if not STATIC_NAME.match(filename) or not (STATIC / filename).is_file():
        return Response("not found", status_code=404)
    return FileResponse(STATIC / filename, headers={"Cache-Control": "no-cache"})


@router.get("/ui/login")
def login_page(request: Request, next: str = "/") -> Response:
    return render(request, "login.html", None, next=auth.safe_next(next))


@router.post("/ui/login")
async def login(request: Request, context: Context) -> Response:
    if not auth.same_origin(request):
        return forbidden()
    values = await auth.form(request)
    target = auth.safe_next(auth.first(values, "next", "/"))
    secret = auth.first(values, "token").strip()
    try:
        session_id, caller = auth.sign_in(request, context, secret)
    except AuthenticationError as exc:
        return render(request, "login.html", None, status=401, next=target, error=exc.detail)
    request.state.principal = caller  # the audit log reads who signed in
    response = RedirectResponse(target, status_code=303)
    auth.set_session(response, request, context, session_id)
    return response


@router.post("/ui/logout")
def logout(request: Request, context: Context) -> Response:
    if not auth.same_origin(request):
        return forbidden()
    auth.sign_out(request, context)
    response = RedirectResponse(auth.LOGIN_PATH, status_code=303)
    auth.clear_session(response, request, context)
    return response


def page(request: Request, context: Context, template: str,
         **build: Callable[[Session, Principal], Any]) -> Response:
    """A read-only page: the caller must be logged in; each value is built in one session."""
    caller = auth.caller_or_none(request, context)
    if caller is None:
        return auth.to_login(request)
    with context.db.session() as session:
        values = {name: make(session, caller) for name, make in build.items()}
        return render(request, template, caller, **values)


@router.get("/")
def overview(request: Request, context: Context) -> Response:
    return page(request, context, "overview.html", data=views.overview)


@router.get("/ui/racks")
def racks(request: Request, context: Context) -> Response:
    return page(request, context, "racks.html", racks=views.racks)


@router.get("/ui/nodes")
def node_list(request: Request, context: Context, state: str = "", node_class: str = "",
              rack: str = "", health: str = "", q: str = "", sort: str = "name") -> Response:
    caller = auth.caller_or_none(request, context)
    if caller is None:
        return auth.to_login(request)
    chosen = {"state": state, "node_class": node_class, "rack": rack, "health": health}
    with context.db.session() as session:
        rows = views.visible_nodes(session, caller, text=q.strip(), **chosen)
        return render(request, "nodes.html", caller, nodes=views.sort_nodes(rows, sort),
                      chosen=chosen, q=q, sort=sort, choices=views.filter_choices(session, caller),
                      images=views.images(session), bulk=[a for a in actions.BULK_ACTIONS
                                                          if actions.permitted(caller, a)],
                      labels=actions.LABELS, can_write=can_write(caller),
                      here=str(request.url.path) + (
                          f"?{request.url.query}" if request.url.query else ""))


@router.get("/ui/nodes/{name}")
def node_detail(request: Request, context: Context, name: str) -> Response:
    caller = auth.caller_or_none(request, context)
    if caller is None:
        return auth.to_login(request)
    with context.db.session() as session:
        try:
            node = policy.node(session, caller, name)
        except NotFoundError as exc:
            return render(request, "missing.html", caller, status=404, detail=exc.detail)
        return render(request, "node.html", caller, node=node, can_write=can_write(caller),
                      shown=policy.emit(caller, nodes.to_out(node)),
                      tenant_names=views.tenant_names(session, caller),
                      events=views.node_events(session, caller, name),
                      images=views.images(session),
                      signals=views.active_signals(session, caller, name),
                      tickets=views.open_tickets(session, caller, name),
                      offered=actions.offered(caller, node), labels=actions.LABELS,
                      working=node.state in views.WORK_STATE_VALUES)


def _confirm(request: Request, caller: Principal, action: str, names: list[str],
             values: dict[str, list[str]]) -> Response:
    hidden = [(key, value) for key, items in values.items() for value in items
              if key != "confirmed"]
    return render(request, "confirm.html", caller, action=action, names=names,
                  label=actions.LABELS.get(action, action), hidden=hidden,
                  post_to=request.url.path, image=auth.first(values, "image"),
                  reason=auth.first(values, "reason"),
                  cancel=auth.safe_next(auth.first(values, "next", "/")))


@router.post("/ui/nodes/{name}/actions/{action}")
async def node_action(request: Request, context: Context, name: str, action: str) -> Response:
    caller = posting_caller(request, context)
    if isinstance(caller, Response):
        return caller
    values = await auth.form(request)
    target = auth.first(values, "next", f"/ui/nodes/{quote(name)}")
    if auth.first(values, "confirmed") != "1":
        return _confirm(request, caller, action, [name], values)
    outcome = actions.run(context, caller, name, action, image=auth.first(values, "image"),
                          reason=auth.first(values, "reason"))
    if outcome.ok:
        return back(target, msg=f"{name}: {outcome.message}")
    return back(target, error=f"{name}: {outcome.message}")


@router.post("/ui/bulk")
async def bulk_action(request: Request, context: Context) -> Response:
    caller = posting_caller(request, context)
    if isinstance(caller, Response):
        return caller
    values = await auth.form(request)
    action = auth.first(values, "action")
    names = values.get("node", [])
    target = auth.first(values, "next", "/ui/nodes")
    if not names or action not in actions.BULK_ACTIONS:
        return back(target, error="pick one or more nodes and an action")
    if auth.first(values, "confirmed") != "1":
        return _confirm(request, caller, action, names, values)
    outcomes = [actions.run(context, caller, name, action, image=auth.first(values, "image"),
                            reason=auth.first(values, "reason")) for name in names]
    done = [o.node for o in outcomes if o.ok]
    failed = "; ".join(f"{o.node}: {o.message}" for o in outcomes if not o.ok)
    summary = f"{actions.LABELS.get(action, action)}: accepted for {len(done)} of {len(names)}"
    return back(target, msg=summary, error=failed)


@router.get("/ui/tenants")
def tenants(request: Request, context: Context) -> Response:
    return page(request, context, "tenants.html", tenants=views.tenants)


@router.get("/ui/images")
def images(request: Request, context: Context) -> Response:
    return page(request, context, "images.html",
                images=lambda session, _caller: views.images(session))


@router.post("/ui/nodes/{name}/tenant")
async def node_tenant(request: Request, context: Context, name: str) -> Response:
    caller = posting_caller(request, context)
    if isinstance(caller, Response):
        return caller
    values = await auth.form(request)
    tenant = auth.first(values, "tenant")
    if auth.first(values, "confirmed") != "1":
        return _confirm(request, caller, "set-tenant", [name], values)
    outcome = actions.set_tenant(context, caller, name, tenant)
    target = f"/ui/nodes/{quote(name)}"
    if outcome.ok:
        return back(target, msg=f"{name}: {outcome.message}")
    return back(target, error=f"{name}: {outcome.message}")


@router.get("/ui/enroll")
def enroll_page(request: Request, context: Context) -> Response:
    caller = auth.caller_or_none(request, context)
    if caller is None:
        return auth.to_login(request)
    with context.db.session() as session:
        return render(request, "enroll.html", caller, form={},
                      choices=views.choices_for_enrolment(session, caller))


@router.post("/ui/enroll")
async def enroll(request: Request, context: Context) -> Response:
    caller = posting_caller(request, context)
    if isinstance(caller, Response):
        return caller
    values = {key: items[0] for key, items in (await auth.form(request)).items() if items}
    outcome = actions.enroll(context, caller, values)
    if outcome.ok:
        return back(f"/ui/nodes/{quote(outcome.node)}", msg=f"{outcome.node}: {outcome.message}")
    values.pop("bmc_password", None)
    with context.db.session() as session:
        return render(request, "enroll.html", caller, status=422, form=values,
                      error=outcome.message, choices=views.choices_for_enrolment(session, caller))
