"""Dashboard sign-in: the API token kept in an HttpOnly, SameSite=Strict cookie, and CSRF.

The cookie holds the token itself and is checked with ``tokens.authenticate`` on every
request, so revoking or expiring a token ends its dashboard sessions at once. It is sent only
to the dashboard's pages (the API reads bearer headers, never cookies).

CSRF: every cookie-authenticated POST must carry an ``Origin`` header (or, from browsers that
omit it, a ``Referer``) naming this server's own scheme, host and port. SameSite=Strict keeps
the browser from sending the cookie on cross-site requests in the first place; the Origin
check is the second lock for browsers or proxies that get SameSite wrong.
"""

from __future__ import annotations

from urllib.parse import parse_qs, quote, urlsplit

from fastapi import Request
from fastapi.responses import RedirectResponse

from metalfleet.core.errors import AuthenticationError
from metalfleet.inventory import tokens
from metalfleet.inventory.tokens import Principal
from metalfleet.runtime import AppContext

COOKIE = "mf_session"
LOGIN_PATH = "/ui/login"
MAX_AGE_S = 12 * 3600


def caller_or_none(request: Request, context: AppContext) -> Principal | None:
    """Who the session cookie belongs to; None without a cookie or with a dead token."""
    secret = request.cookies.get(COOKIE, "").strip()
    if not secret:
        return None
    try:
        with context.db.session() as session:
            return tokens.authenticate(session, secret)
    except AuthenticationError:
        return None


def authenticate(context: AppContext, secret: str) -> Principal:
    with context.db.session() as session:
        return tokens.authenticate(session, secret.strip())


def safe_next(value: str | None) -> str:
    """Only local paths: '/x' yes, '//evil.example' and 'https://evil' no."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{LOGIN_PATH}?next={quote(here, safe='')}", status_code=303)


def set_session(response: RedirectResponse, request: Request, secret: str) -> None:
    response.set_cookie(COOKIE, secret.strip(), max_age=MAX_AGE_S, path="/", httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


def clear_session(response: RedirectResponse) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")


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
