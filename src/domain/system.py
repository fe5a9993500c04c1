"""depot's own tables: the system catalog that every catalog gets, migrated by depot's own history.

On PostgreSQL they live in the catalog's `system_schema` (`depot`), apart from the user's tables.

A user's catalog starts from these (``Catalog()`` copies them in), so its tables can reference
``sources`` and ``ingest_batches``, and its migrations never create or alter them.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from annotated_types import Ge

from domain.ingestion import DISPOSITIONS, MODES, ON_CONFLICT, STATUSES
from domain.schema import BigInt, Catalog, OneOf, Pattern, References

SYSTEM = Catalog(system=False)


# No history: sources are depot's configuration, edited by hand, and their priority is read as it is now.
@SYSTEM.table("sources", group="primary", natural_key=("code",), provenance=False, history=False)
class Source:
    """Where rows come from. Higher priority wins when two sources write the same natural key."""

    code: Annotated[str, Pattern(r"[a-z0-9_-]{1,32}")]
    name: str
    priority: int = 0
    url: str | None = None
    # How this source's data maps onto the tables (domain.profiles, PROFILE_SCHEMA); checked on every write.
    profile: dict | None = None


# Declared before the tables that carry `batch_id`, so its foreign key has a target.
@SYSTEM.table("ingest_batches", group="ingestion", natural_key=("id",), surrogate_id=True, read_only=True,
              unique=(("schema", "table", "idempotency_key"),))
class IngestBatch:
    """One ingest request: what was asked, and what it did. Read-only through the table API."""

    table: str
    source: Annotated[str, References("sources", "code")]
    mode: Annotated[str, OneOf(MODES)]
    on_conflict: Annotated[str, OneOf(ON_CONFLICT)]
    status: Annotated[str, OneOf(STATUSES)]
    started_at: dt.datetime
    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    superseded: int = 0
    rejected: int = 0
    retired: int = 0
    deleted: int = 0
    disposition: Annotated[str, OneOf(DISPOSITIONS)] = "upsert"
    # The schema of the catalog whose table this is (Catalog.schema): catalogs in several schemas of one
    # database share these tables, and each one's batch routes see its own batches.
    schema: str = "public"
    idempotency_key: str | None = None
    request_hash: str | None = None
    finished_at: dt.datetime | None = None
    profile: dict | None = None  # the effective source profile of the batch, which a replay reads its rows with
    profile_hash: str | None = None
    error: dict | None = None  # a failed batch's reason: {code, message} of what stopped it


@SYSTEM.table("rejected_rows", group="ingestion", natural_key=("id",), surrogate_id=True, read_only=True)
class RejectedRow:
    """A row an ingest batch could not write, kept with its reasons until a replay accepts it."""

    batch_id: Annotated[int, BigInt(), References("ingest_batches", "id")]
    row_number: Annotated[int, Ge(1)]
    payload: dict
    errors: list
    resolved_at: dt.datetime | None = None
    dismissed_at: dt.datetime | None = None  # abandoned on purpose: replays leave it alone
    dismissed_reason: str | None = None


SYSTEM_TABLES = SYSTEM.names
