"""A request body size limit for the whole API (issue 11: bounded input).

A pure ASGI middleware: a body announced larger than the limit (Content-Length) is refused
before the app sees anything, and a body without a length (chunked) is read up to the limit
and refused as soon as it passes it, so the app is never called and nothing is stored. The
one exception is ``POST /v1/images/upload``, which streams to disk under its own cap
(``Settings.max_upload_bytes``); fleet files (``/v1/fleet/plan|apply``) describe a whole
fleet and get a larger fixed cap. Refusals are 413 application/problem+json. It is installed
inside the audit middleware, so a refused mutating call is still audited.
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metalfleet.config import Settings
from metalfleet.runtime import AppContext

# Paths that stream their bodies with a cap of their own.
STREAMING = frozenset({("POST", "/v1/images/upload")})
# Fleet files describe a whole fleet (thousands of nodes): they get a larger, still fixed cap.
FLEET_MAX_BYTES = 32 << 20
LARGER = {("POST", "/v1/fleet/plan"): FLEET_MAX_BYTES,
          ("POST", "/v1/fleet/apply"): FLEET_MAX_BYTES}


def _human(limit: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if limit >= size and limit % size == 0:
            return f"{limit // size} {unit}"
    return f"{limit} bytes"


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes with a 413 problem."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings  # read per request: the limit may be changed at run time

    def limit_for(self, scope: Scope) -> int:
        limit = int(self.settings.max_request_bytes)
        return max(limit, LARGER.get((scope["method"], scope["path"]), 0))

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        body = json.dumps({
            "type": "about:blank", "title": "Request body too large", "status": 413,
            "detail": f"the request body exceeds the limit of {limit} bytes "
                      f"({_human(limit)}); send less",
            "instance": scope.get("path", ""), "limit_bytes": limit,
        }).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in STREAMING:
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                announced = int(length)
            except ValueError:
                announced = limit + 1
            if announced > limit:
                await self._refuse(scope, send, limit)
                return
        # Read the whole body (it is small, or it is refused), then replay it to the app.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)  # a disconnect: let the app see it
                break
            size += len(message.get("body", b""))
            if size > limit:
                await self._refuse(scope, send, limit)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Message:
            try:
                return next(replay)
            except StopIteration:
                return await receive()

        await self.app(scope, replayed, send)


def install(app: FastAPI, context: AppContext) -> None:
    """Bound every request body by ``settings.max_request_bytes``."""
    app.add_middleware(BodyLimit, settings=context.settings)
