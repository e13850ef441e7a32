"""Request guards: refuse what would cost the server dearly before anything parses it.

One tween, first in the chain, so its answers also carry the security headers and nothing
below it ever sees such a request:

- a path or query string that is not UTF-8 once percent-decoded (``/%ff``): 400, where WebOb
  would raise while routing;
- a method no route knows (``TRACE``, ``CONNECT``, made-up ones): 405 with ``Allow``;
- a body larger than the upload cap: 413 from its ``Content-Length`` (or from reading one byte
  past the cap), before it is read;
- a form or JSON body that is not UTF-8: 400;
- a JSON body nested deeper than :data:`MAX_JSON_DEPTH` or with an object of more than
  :data:`MAX_JSON_KEYS` keys: 400. Depth is counted over the raw bytes (strings skipped) with
  numpy before any parse, so a megabyte of ``[`` costs milliseconds and never reaches Python's
  recursive decoder; keys are counted by the decoder's ``object_pairs_hook`` as objects are
  built, before the OpenAPI validator (which took 19 s over a 40,000-key object) sees them.

A subscriber refuses route ids that are not whole numbers that fit the database's 64-bit
integers (``/members/9223372036854775808``) with a 404 before any context factory queries.
"""

from __future__ import annotations

import json
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import numpy as np
import sqlalchemy as sa
from pyramid.events import BeforeTraversal
from pyramid.httpexceptions import HTTPNotFound
from pyramid.response import Response
from pyramid.tweens import INGRESS

from qicollab.accounts.headers import SECURITY_HEADERS
from qicollab.submissions.parsing import Limits

if TYPE_CHECKING:
    from collections.abc import Callable

    from pyramid.config import Configurator
    from pyramid.registry import Registry
    from pyramid.request import Request

#: Deepest JSON nesting any API body needs (a FHIR MeasureReport is about 8 levels).
MAX_JSON_DEPTH = 32
#: Most keys in one JSON object (the widest patient row has well under 100 fields).
MAX_JSON_KEYS = 256
#: Methods some route answers; anything else is refused as not allowed.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The largest id a PostgreSQL ``bigint`` (and SQLite ``INTEGER``) holds.
MAX_ID = 2**63 - 1

log = logging.getLogger(__name__)

_JSON_TYPE = re.compile(r"^application/(?:[\w.-]+\+)?json$")
_FORM_TYPE = "application/x-www-form-urlencoded"
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class RefusedRequestError(Exception):
    """Why a request was refused before any view ran."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def json_depth(raw: bytes) -> int:
    """The deepest nesting of ``[`` and ``{`` in JSON bytes, strings not counted."""
    if b"[" not in raw and b"{" not in raw:
        return 0
    stripped = _STRING.sub(b'""', raw) if b'"' in raw else raw
    codes = np.frombuffer(stripped, dtype=np.uint8)
    steps = (
        (codes == ord("[")).astype(np.int32)
        + (codes == ord("{"))
        - (codes == ord("]"))
        - (codes == ord("}"))
    )
    return int(np.cumsum(steps).max(initial=0))


def _count_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(pairs) > MAX_JSON_KEYS:
        raise RefusedRequestError(
            400,
            "too_many_keys",
            f"a JSON object has more than {MAX_JSON_KEYS} keys; no request needs that many",
        )
    return dict(pairs)


def check_json(raw: bytes) -> None:
    """Refuse JSON bytes that are not UTF-8, nested too deep, or hold a too-wide object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RefusedRequestError(400, "not_utf8", "the body is not UTF-8 text") from None
    depth = json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        raise RefusedRequestError(
            400, "too_deep", f"the JSON is nested more than {MAX_JSON_DEPTH} levels deep"
        )
    try:
        json.loads(text, object_pairs_hook=_count_keys)
    except ValueError:
        return  # not JSON at all: the API's own validation answers that, as documented


def check_request(request: Request) -> None:
    """Raise :class:`RefusedRequestError` for a request that must not reach the application."""
    environ = request.environ
    for key in ("PATH_INFO", "QUERY_STRING"):
        raw = environ.get(key, "").encode("latin-1", "replace")
        try:
            unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            where = "path" if key == "PATH_INFO" else "query string"
            raise RefusedRequestError(400, "not_utf8", f"the {where} is not UTF-8") from None
    if request.method not in KNOWN_METHODS:
        raise RefusedRequestError(405, "method_not_allowed", f"{request.method} is not supported")
    if request.method not in {"POST", "PUT", "PATCH"}:
        return
    limit = Limits.from_settings(request.registry.settings).max_bytes
    # Room for the multipart envelope and form fields around an upload of the largest size.
    cap = limit + 1024 * 1024
    if (request.content_length or 0) > cap:
        raise RefusedRequestError(413, "too_large", f"the body is larger than {cap} bytes")
    content_type = (request.content_type or "").lower()
    if _JSON_TYPE.match(content_type):
        check_json(_body(request, cap))
    elif content_type == _FORM_TYPE:
        body = _body(request, cap)
        try:
            unquote_to_bytes(body.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise RefusedRequestError(400, "not_utf8", "the form is not UTF-8") from None


def _body(request: Request, cap: int) -> bytes:
    """The body, read once from the input stream and kept in memory for the views.

    Read directly (not through WebOb's ``request.body``, which spools bodies over 10 KB to
    a temporary file first); at most one byte past the cap is ever read.
    """
    stream = request.environ["wsgi.input"]
    length = request.content_length
    seekable = getattr(stream, "seekable", lambda: False)()
    start = stream.tell() if seekable else 0
    data = stream.read(cap + 1 if length is None else min(length, cap + 1))
    if len(data) > cap:
        raise RefusedRequestError(413, "too_large", f"the body is larger than {cap} bytes")
    if seekable:
        stream.seek(start)  # the views read it again from where it was
    else:
        request.body = data
    return data


def refusal_response(request: Request, refusal: RefusedRequestError) -> Response:
    """The refusal as the caller's API expects it: JSON, FHIR OperationOutcome or text."""
    path = request.environ.get("PATH_INFO", "")
    response = Response(status=refusal.status, charset="utf-8")
    if path.startswith("/api/fhir/"):
        response.content_type = "application/fhir+json"
        response.text = json.dumps(
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": refusal.message}],
            }
        )
    elif path.startswith("/api/"):
        response.content_type = "application/json"
        response.text = json.dumps(
            {"status": refusal.status, "code": refusal.code, "message": refusal.message}
        )
    else:
        response.content_type = "text/plain"
        response.text = f"{refusal.status}: {refusal.message}\n"
    if refusal.status == 405:
        response.headers["Allow"] = ", ".join(sorted(KNOWN_METHODS))
    response.cache_control = "no-store"
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def request_guard_tween_factory(
    handler: Callable[[Request], Response], registry: Registry
) -> Callable[[Request], Response]:
    """Answer refused requests here; pass the rest on untouched."""

    def request_guard_tween(request: Request) -> Response:
        try:
            check_request(request)
        except RefusedRequestError as refusal:
            return refusal_response(request, refusal)
        return handler(request)

    return request_guard_tween


def refuse_overflowing_ids(event: BeforeTraversal) -> None:
    """404 for a route id that is not a whole number a 64-bit integer column can hold."""
    matchdict = event.request.matchdict or {}
    for name, value in matchdict.items():
        if name != "id" and not name.endswith("_id"):
            continue
        if not isinstance(value, str) or not value.isascii() or not value.isdigit():
            raise HTTPNotFound
        if int(value) > MAX_ID:
            raise HTTPNotFound


def id_out_of_range(exc: Exception, request: Request) -> Response:
    """A number from a query string or form that no integer column can hold.

    The database driver refuses it (``OverflowError`` from SQLite, ``NumericValueOutOfRange``
    and other data errors from PostgreSQL): no row can have that id (404); any other value
    the database cannot store is unprocessable (422). Logged without the value.
    """
    orig = getattr(exc, "orig", exc)
    log.warning("refused %s %s: %s", request.method, request.path_url, type(orig).__name__)
    if isinstance(exc, OverflowError) or type(orig).__name__ == "NumericValueOutOfRange":
        return refusal_response(request, RefusedRequestError(404, "not_found", "no such item"))
    message = "the request holds a value the database cannot store"
    return refusal_response(request, RefusedRequestError(422, "bad_value", message))


def includeme(config: Configurator) -> None:
    """The guard tween (first of all), the id subscriber and the out-of-range id view."""
    config.add_tween("qicollab.guards.request_guard_tween_factory", under=INGRESS)
    config.add_subscriber(refuse_overflowing_ids, BeforeTraversal)
    config.add_exception_view(id_out_of_range, context=OverflowError)
    config.add_exception_view(id_out_of_range, context=sa.exc.DataError)
