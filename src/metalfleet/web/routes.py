"""The web root. The full dashboard lands with its own issue; this page says where things are."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from metalfleet import __version__

router = APIRouter(include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>metalfleet</title>
<style>body{{font-family:system-ui,sans-serif;max-width:44rem;margin:3rem auto;color:#222}}
code{{background:#f3f3f3;padding:0 .3em}}</style></head>
<body><h1>metalfleet {version}</h1>
<p>A bare-metal cloud for GPU and HPC clusters.</p>
<ul>
<li><a href="/docs">API reference</a> (OpenAPI at <a href="/openapi.json">/openapi.json</a>)</li>
<li><a href="/healthz">health</a></li>
</ul>
<p>Use the CLI: <code>metalfleet node list</code>. The API wants
<code>Authorization: Bearer &lt;token&gt;</code>; the admin token is in
<code>&lt;data-dir&gt;/admin.token</code>.</p>
</body></html>"""


@router.get("/", response_class=HTMLResponse)
def index() -> str:
    return PAGE.format(version=__version__)
