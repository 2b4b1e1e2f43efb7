"""Dashboard sign-in: a short-lived session in an HttpOnly, SameSite=Strict cookie, and CSRF.

Signing in with an API token opens a dashboard session (web/sessions.py): the cookie carries
the session's random id, never the token, so a stolen cookie is no bearer token, ends after
an idle hour or twelve hours in any case (Settings.web_session_*), and ends at once when its
token is revoked or expires (each request re-checks the token). The cookie is ``Secure``
whenever the deployment says browsers reach it over HTTPS (Settings.secure_cookies: `up
--tls-cert` or METALFLEET_BEHIND_TLS) or the request itself came over HTTPS. It is sent only
to the dashboard's pages (the API reads bearer headers, never cookies).

CSRF: every cookie-authenticated POST must carry an ``Origin`` header (or, from browsers that
omit it, a ``Referer``) naming this server's own scheme, host and port. SameSite=Strict keeps
the browser from sending the cookie on cross-site requests in the first place; the Origin
check is the second lock for browsers or proxies that get SameSite wrong.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse

from metalfleet.inventory.tokens import Principal
from metalfleet.runtime import AppContext
from metalfleet.web import sessions

COOKIE = "mf_session"
LOGIN_PATH = "/ui/login"


def lifetime(context: AppContext) -> sessions.Lifetime:
    settings = context.settings
    return sessions.Lifetime(max_age=timedelta(seconds=settings.web_session_max_age_s),
                             idle=timedelta(seconds=settings.web_session_idle_s))


def caller_or_none(request: Request, context: AppContext) -> Principal | None:
    """Who the session cookie belongs to; None without a cookie or with a dead session."""
    session_id = request.cookies.get(COOKIE, "").strip()
    if not session_id:
        return None
    with context.db.session() as session:
        return sessions.resolve(session, session_id, lifetime(context))


def sign_in(request: Request, context: AppContext, secret: str) -> tuple[str, Principal]:
    """Open a session with an API token (AuthenticationError when it is unknown or expired)."""
    address = request.client.host if request.client else None
    with context.db.session() as session:
        return sessions.open_session(session, secret.strip(), lifetime(context), address)


def sign_out(request: Request, context: AppContext) -> None:
    session_id = request.cookies.get(COOKIE, "").strip()
    if session_id:
        with context.db.session() as session:
            sessions.close(session, session_id)


def safe_next(value: str | None) -> str:
    """Only local paths: '/x' yes, '//evil.example' and 'https://evil' no."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(here, safe='')}", status_code=303)


def set_session(response: RedirectResponse, request: Request, context: AppContext,
                session_id: str) -> None:
    secure = context.settings.secure_cookies or request.url.scheme == "https"
    response.set_cookie(COOKIE, session_id, max_age=int(context.settings.web_session_max_age_s),
                        path="/", httponly=True, samesite="strict", secure=secure)


def clear_session(response: RedirectResponse, request: Request, context: AppContext) -> None:
    secure = context.settings.secure_cookies or request.url.scheme == "https"
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=secure)


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def same_origin(request: Request) -> bool:
    """True when the POST comes from a page of this server (the CSRF check)."""
    own = _origin_of(str(request.base_url))
    origin = request.headers.get("origin")
    if origin and origin != "null":
        return _origin_of(origin) == own
    referer = request.headers.get("referer")
    return bool(referer) and _origin_of(referer or "") == own


async def form(request: Request) -> dict[str, list[str]]:
    """An application/x-www-form-urlencoded body (no python-multipart needed)."""
    body = (await request.body()).decode("utf-8", errors="replace")
    return parse_qs(body, keep_blank_values=True)


def first(values: dict[str, list[str]], key: str, default: str = "") -> str:
    found = values.get(key)
    return found[0] if found else default
