"""The ``secbot demo`` web page: the emulated workspace as Slack would show it.

Plain HTML/CSS/JS in ``secbot_emulators/static/`` (no build step, nothing fetched from
elsewhere), served on the emulator's own port so the page calls the JSON API under
``/_emulator/`` (:mod:`~secbot_emulators.slack_demo_api`) same-origin::

    SlackEmulator(routes=page_routes())   # what SlackEmulator does when given no "/" route

Every message on the page comes from alerts, i.e. from attackers. The page builds DOM nodes with
``textContent`` only, and every response carries a Content-Security-Policy that allows only
this origin's scripts, no inline script, no plugins, and requires Trusted Types, so an
``innerHTML`` assignment would throw instead of parsing markup.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).with_name("static")
#: The only files served, with their content types (no directory listing, no traversal).
ASSETS = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "style.css": "text/css",
}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def asset_response(name: str) -> web.Response:
    """One of :data:`ASSETS` with its content type and the security headers; 404 otherwise."""
    content_type = ASSETS.get(name)
    if content_type is None:
        raise web.HTTPNotFound(text="no such asset")
    body = (STATIC_DIR / name).read_bytes()
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=HEADERS)


async def index(request: web.Request) -> web.Response:
    """``GET /``: the page."""
    return asset_response("index.html")


async def asset(request: web.Request) -> web.Response:
    """``GET /static/{name}``: the page's script and style sheet."""
    return asset_response(request.match_info["name"])


def page_routes() -> list[web.RouteDef]:
    """Routes for ``SlackEmulator(routes=…)``: ``/`` and ``/static/{name}``."""
    return [web.get("/", index), web.get("/static/{name}", asset)]
