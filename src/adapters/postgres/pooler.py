"""Whether depot reaches PostgreSQL through a connection pooler (PgBouncer, pgpool): said once at start.

A batch's lease is a session-level advisory lock held by a connection of its own. Through PgBouncer
in transaction (or statement) pooling, the server connection under that session changes between
transactions, so the lock may be held by a connection nobody owns, or released under a live batch.
PgBouncer cannot be asked its pool mode from a client connection; what can be seen is that the
server listens on another port than the one dialled, which a pooler (or a port mapping) causes.
"""

from __future__ import annotations

from sqlalchemy.engine import Engine

DEFAULT_PORT = 5432


def pooler_warning(engine: Engine) -> str | None:
    """One paragraph when the dialled port differs from the server's own; None otherwise (or on a socket)."""
    url = engine.url
    if not url.host or url.host.startswith("/") or "host" in url.query:
        return None  # a Unix socket: no pooler between (PgBouncer on a socket is not detected)
    dialled = url.port or DEFAULT_PORT
    try:
        with engine.connect() as connection:
            server_port = connection.exec_driver_sql("SELECT inet_server_port()").scalar()
    except Exception:  # noqa: BLE001 - the start reports an unreachable database elsewhere
        return None
    if server_port is None or int(server_port) == dialled:
        return None
    return (f"depot dialled port {dialled}, but the PostgreSQL behind it listens on {server_port}: a connection "
            f"pooler such as PgBouncer, or a port mapping, sits between. Ingest batch leases are session-level "
            f"advisory locks: through PgBouncer they hold only with pool_mode=session. With transaction pooling, "
            f"point depot at PostgreSQL directly (reads may still go through the pooler).")
