"""Security headers on every response, set by one tween so no view can forget them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qicollab.accounts.sessions import SESSION_COOKIE

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyramid.registry import Registry
    from pyramid.request import Request
    from pyramid.response import Response

#: Only our own scripts, styles and fonts; images may also be data: URIs (SVG charts); no
#: plugins, no framing, no foreign form targets or base URLs.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
        "base-uri 'self'",
        "form-action 'self'",
    )
)

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

#: Sent over HTTPS only (browsers ignore it over HTTP): one year. Not ``includeSubDomains``: other
#: hosts under the same domain are not ours to pin.
STRICT_TRANSPORT_SECURITY = "max-age=31536000"


def _is_static(request: Request) -> bool:
    route = request.matched_route
    return route is not None and route.name.startswith("__static")


def _carries_credentials(request: Request) -> bool:
    """A session cookie or bearer token came with the request.

    Judged from the headers, not the identity, so static files never load a user. Responses
    that set a session or CSRF cookie mark themselves ``no-store`` where the cookie is set
    (response callbacks run after the tweens).
    """
    return SESSION_COOKIE in request.cookies or "Authorization" in request.headers


def security_headers_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    """Add the security headers; forbid caching of anything a signed-in user is shown."""

    def security_headers_tween(request: Request) -> Response:
        response = handler(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if request.scheme == "https":
            response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
        if _carries_credentials(request) and not _is_static(request):
            response.headers["Cache-Control"] = "no-store"
            response.headers.pop("Expires", None)
        return response

    return security_headers_tween
