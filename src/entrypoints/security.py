"""Who may call depot and how much they may send: API keys and roles, the body limit, the exposure check.

Both protections are pure ASGI middleware: they run before routing, cost a dict lookup and one
hash per request, and answer in the PostgREST error shape without touching the app.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Literal

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrypoints.docs import DOC_PATHS
from entrypoints.http import HttpError, dumps

Role = Literal["read", "write", "metrics"]
# metrics: GET /metrics only, for a Prometheus server that should read no rows.
ROLES: tuple[Role, ...] = ("read", "write", "metrics")
METRICS_PATH = "/metrics"
# GET and HEAD read; everything else (POST, PATCH, DELETE, PUT, OPTIONS...) writes.
READ_METHODS = frozenset({"GET", "HEAD"})
# Open without a key: the liveness probe, and the API description (it shows table and column
# names, never rows; Swagger UI has to load it before anyone can press "Authorize").
PUBLIC_PATHS = frozenset({"/health", "/live", "/ready", "/openapi.json", "/", "/console"}) | DOC_PATHS
# The console's shell and its static files hold no data: the page asks for a key, then every read
# it makes goes through /api and /ingest with that key like any client's.
PUBLIC_PREFIXES = ("/console/",)
_KEY_TEXT = re.compile(r"^[!-~]+$")  # printable ASCII, no spaces: what fits a bearer token


class ConfigurationError(ValueError):
    """A setting that cannot work; the message says how to fix it."""


@dataclass(frozen=True)
class ApiKey:
    digest: bytes
    role: Role


def parse_api_keys(text: str) -> list[ApiKey]:
    """`KEY:ROLE,KEY:ROLE` as keys; a malformed entry is refused, and its key is never echoed."""
    keys: dict[bytes, Role] = {}
    for position, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            continue
        key, colon, role = entry.rpartition(":")
        key, role = key.strip(), role.strip().lower()
        if not colon or not key:
            raise ConfigurationError(f"DEPOT_API_KEYS entry {position} is not KEY:ROLE (roles: read, write, metrics)")
        if role not in ROLES:
            raise ConfigurationError(f"DEPOT_API_KEYS entry {position} has the role {role!r}; use read or write "
                                     f"(or metrics, for GET /metrics only)")
        if not _KEY_TEXT.match(key):
            raise ConfigurationError(f"DEPOT_API_KEYS entry {position}: a key is printable ASCII without spaces")
        digest = _digest(key)
        if keys.get(digest, role) != role:
            raise ConfigurationError(f"DEPOT_API_KEYS entry {position} repeats a key with another role")
        keys[digest] = role  # type: ignore[assignment]
    return [ApiKey(digest, role) for digest, role in keys.items()]


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def _digest(token: str) -> bytes:
    # Comparing fixed-length digests keeps the comparison's time independent of the key's length.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def role_of(token: str, keys: list[ApiKey]) -> Role | None:
    """The role of a presented token, in time that does not depend on which key (if any) it matches."""
    presented = _digest(token)
    found: Role | None = None
    for key in keys:  # no early exit: every key is compared
        if hmac.compare_digest(presented, key.digest):
            found = key.role
    return found


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_problem(host: str, api_keys: str) -> str | None:
    """Why serving on `host` with these keys is refused, or None when it is fine."""
    if is_loopback(host) or parse_api_keys(api_keys):
        return None
    return (f"Refusing to serve on {host}, a non-loopback address, without API keys: anyone who can reach "
            f"it could read and change every row. Either set DEPOT_API_KEYS (for example "
            f"DEPOT_API_KEYS=\"$(python -c 'import secrets; print(secrets.token_urlsafe(32))'):write\"), "
            f"or bind to 127.0.0.1 (--host 127.0.0.1).")


# --- ASGI plumbing -------------------------------------------------------------------------------


async def send_error(send: Send, error: HttpError, headers: dict[str, str] | None = None) -> None:
    body = dumps(error.as_dict())
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


class ApiKeyMiddleware:
    """Bearer keys with roles: none or unknown -> 401, a read key on a write -> 403."""

    def __init__(self, app: ASGIApp, api_keys: str):
        self.app = app
        self.keys = parse_api_keys(api_keys)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        role = self._role(scope)
        if role is None:
            presented = _header(scope, b"authorization") is not None
            error = HttpError(
                401,
                "The API key is missing or not valid" if presented else "This request needs an API key",
                code="PGRST301" if presented else "PGRST302",
                hint="Send Authorization: Bearer <key>, with a key from DEPOT_API_KEYS.",
            )
            challenge = 'Bearer error="invalid_token"' if presented else 'Bearer realm="depot"'
            await send_error(send, error, {"www-authenticate": challenge})
            return
        if role == "metrics" and (scope["path"] != METRICS_PATH or scope["method"] not in READ_METHODS):
            await send_error(send, HttpError(403, "A metrics key can only GET /metrics", code="42501",
                                             hint="Use a key with the read or write role."))
            return
        if role == "read" and scope["method"] not in READ_METHODS:
            await send_error(send, HttpError(403, f"A read key cannot {scope['method']}", code="42501",
                                             hint="Use a key with the write role."))
            return
        scope.setdefault("state", {})["role"] = role
        await self.app(scope, receive, send)

    def _role(self, scope: Scope) -> Role | None:
        header = _header(scope, b"authorization")
        if header is None:
            return None
        scheme, _, token = header.decode("latin-1").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return role_of(token.strip(), self.keys)


class BodyTooLarge(HttpError, HTTPException):
    """413. Also a Starlette HTTPException, so code that turns unknown errors while reading a body
    into 400 (FastAPI does, for declared body parameters) lets it through."""

    def __init__(self, limit: int):
        HttpError.__init__(self, 413, f"The request body is larger than {limit} bytes", code="PGRST413",
                           hint="Split it, or raise DEPOT_MAX_BODY_BYTES.")
        self.status_code, self.detail, self.headers = 413, self.message, {"connection": "close"}


class BodyLimitMiddleware:
    """DEPOT_MAX_BODY_BYTES for every route, counted as the body arrives, never after reading it whole.

    A declared Content-Length over the limit is answered at once, before the app runs. A chunked
    body is counted chunk by chunk in `receive`; the chunk that crosses the limit raises
    BodyTooLarge in whatever is reading, which the app's error handler answers with 413 (or, if
    the app let it through and has not started its answer, this middleware does).
    """

    def __init__(self, app: ASGIApp, max_body_bytes: int):
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.limit:
            await send_error(send, BodyTooLarge(self.limit), {"connection": "close"})
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge as error:
            if started:
                raise
            await send_error(send, error, {"connection": "close"})


def document_security(schema: dict[str, Any], settings: Any) -> None:
    """With keys configured, the OpenAPI document says so: Swagger UI's "Authorize" then sends the key."""
    if not parse_api_keys(settings.api_keys):
        return
    schema.setdefault("components", {})["securitySchemes"] = {"bearer": {
        "type": "http", "scheme": "bearer",
        "description": "A key from DEPOT_API_KEYS. Role read: GET and HEAD; role write: everything.",
    }}
    for path, operations in schema.get("paths", {}).items():
        if path in PUBLIC_PATHS:
            continue
        for operation in operations.values():
            if isinstance(operation, dict):
                operation["security"] = [{"bearer": []}]
                operation.setdefault("responses", {}).update({
                    "401": {"description": "No key, or not a valid one"},
                    "403": {"description": "A read key on a write"},
                })


def install_security(app: Any, settings: Any) -> None:
    """Check the keys and the exposure now (a bad setting stops the start, not the first request),
    then add the protections: the access log outermost, the key check, then the body limit (no
    key, no reading)."""
    from entrypoints.access_log import AccessLogMiddleware, configure_access_log

    problem = exposure_problem(settings.host, settings.api_keys)
    if problem:
        raise ConfigurationError(problem)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(ApiKeyMiddleware, api_keys=settings.api_keys)
    app.add_middleware(AccessLogMiddleware)
    configure_access_log(settings.log_level)
