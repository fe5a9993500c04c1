"""The catalog: every table this project stores, declared once.

depot derives everything else from these declarations: the PostgreSQL table and its constraints,
the migration, validation, the routes under /api/{table}, /ingest/{table} and the OpenAPI document.

After a change here:
    depot makemigration "what changed"   # writes migrations/..., read it and commit it
    depot serve                          # migrates, then serves http://127.0.0.1:8000/docs
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Annotated

from depot import Catalog, Doc, Ge, MaxLen, Numeric, Pattern, References  # noqa: F401 (References: see below)

CATALOG = Catalog()  # comes with depot's own tables: sources, ingest_batches, rejected_rows


# group= says what kind of data a table holds: "primary" (independent reference data),
# "secondary" (reference data pointing at primary tables) or "instances" (time-stamped
# observations; use surrogate_id=True to give them a bigint `id` beside the natural key).
# The natural key is what ingest upserts on: a row with a stored key updates that row.
@CATALOG.table("products", group="primary", natural_key=("sku",))
class Product:
    """Something this project collects data about."""

    sku: Annotated[str, Pattern(r"[A-Z0-9-]{3,32}"), Doc("Stock keeping unit.")]  # a CHECK and validation
    name: Annotated[str, MaxLen(200)]
    price: Annotated[decimal.Decimal | None, Numeric(12, 2), Ge(0)] = None  # `| None`: nullable
    first_seen: dt.date | None = None  # a default makes a column optional on write


# A table that points at another: a hard reference is a foreign key, checked on every write;
# References("products", soft=True) would keep it embeddable without the constraint.
#
# @CATALOG.table("prices", group="instances", natural_key=("sku", "observed_at"), surrogate_id=True)
# class Price:
#     sku: Annotated[str, References("products")]
#     observed_at: dt.datetime
#     price: Annotated[decimal.Decimal, Numeric(12, 2), Ge(0)]
#
# Every table of the three groups also gets depot's system columns: source, batch_id, version,
# created_at and updated_at. They are depot's to set; do not declare them.
