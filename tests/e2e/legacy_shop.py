"""A bookshop as an application made it before depot: SQLAlchemy models, `create_all`, rows written by
that application. `depot adopt` is tried on it (tests/e2e/test_adopt.py)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

authors = sa.Table(
    "authors", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # serial: a surrogate key
    sa.Column("name", sa.String(120), nullable=False, unique=True),  # ... and the natural key
    sa.Column("born", sa.Date),
    sa.Column("country", sa.String(2), server_default="FR"),
    sa.CheckConstraint("born > '1000-01-01'", name="born_after_1000"),  # a date bound: not mapped
    comment="People who write books.",
)

publishers = sa.Table(
    "publishers", metadata,
    sa.Column("code", sa.String(8), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("founded", sa.SmallInteger),
    sa.CheckConstraint("code ~ '^[A-Z]{2,8}$'"),
    sa.CheckConstraint("founded >= 1400"),
    sa.Index("publishers_by_name", "name", unique=True),  # a unique index, not a constraint
)

countries = sa.Table(  # no primary key: its unique NOT NULL code becomes one
    "countries", metadata,
    sa.Column("code", sa.String(2), nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
)

books = sa.Table(
    "books", metadata,
    sa.Column("isbn", sa.String(13), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("author_id", sa.Integer, sa.ForeignKey("authors.id"), nullable=False, index=True),
    sa.Column("publisher", sa.String(8), sa.ForeignKey("publishers.code")),
    sa.Column("pages", sa.Integer, sa.CheckConstraint("pages > 0")),
    sa.Column("price", sa.Numeric(8, 2), sa.CheckConstraint("price >= 0")),
    sa.Column("format", sa.String(10), nullable=False, server_default="paperback"),
    sa.Column("tags", postgresql.ARRAY(sa.Text)),
    sa.Column("attributes", postgresql.JSONB),
    sa.Column("shelf_life", postgresql.INTERVAL),  # no such type in the declaration language
    sa.CheckConstraint("format IN ('paperback', 'hardcover', 'ebook')", name="book_format"),
)

stores = sa.Table(
    "stores", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("city", sa.String(60), nullable=False),
    sa.Column("opened_at", sa.DateTime),  # naive
    sa.Column("online", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("kind", sa.Enum("shop", "kiosk", "online", name="store_kind"), nullable=False, server_default="shop"),
)

stock = sa.Table(
    "stock", metadata,
    sa.Column("id", sa.BigInteger, primary_key=True),  # bigserial
    sa.Column("isbn", sa.String(13), sa.ForeignKey("books.isbn"), nullable=False),
    sa.Column("store_id", sa.Uuid, sa.ForeignKey("stores.id"), nullable=False),
    sa.Column("observed_at", sa.DateTime, nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("price", sa.Numeric(10, 2)),
    sa.UniqueConstraint("isbn", "store_id", "observed_at"),  # the composite natural key
)

reviews = sa.Table(
    "reviews", metadata,
    sa.Column("id", sa.Integer, primary_key=True),  # a surrogate key and nothing unique: --natural-key
    sa.Column("isbn", sa.String(13), sa.ForeignKey("books.isbn"), nullable=False),
    sa.Column("reviewer", sa.String(60), nullable=False),
    sa.Column("stars", sa.Integer, nullable=False),
    sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("stars BETWEEN 1 AND 5", name="stars_range"),
)

editions = sa.Table(
    "editions", metadata,
    sa.Column("isbn", sa.String(13), sa.ForeignKey("books.isbn"), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("released", sa.Date),
)

printings = sa.Table(
    "printings", metadata,
    sa.Column("isbn", sa.String(13), primary_key=True),
    sa.Column("edition", sa.Integer, primary_key=True),
    sa.Column("run", sa.Integer, primary_key=True),
    sa.Column("copies", sa.Integer, nullable=False),
    sa.ForeignKeyConstraint(["isbn", "edition"], ["editions.isbn", "editions.number"]),
)

STORE_LYON = uuid.UUID("6f1c1a52-3c55-4a55-9d8a-111111111111")
STORE_WEB = uuid.UUID("6f1c1a52-3c55-4a55-9d8a-222222222222")

ROWS: dict[str, list[dict]] = {
    "authors": [
        {"name": "Ursula K. Le Guin", "born": dt.date(1929, 10, 21), "country": "US"},
        {"name": "Marguerite Yourcenar", "born": dt.date(1903, 6, 8)},
        {"name": "Stanisław Lem", "born": None, "country": "PL"},
    ],
    "countries": [{"code": "FR", "name": "France"}, {"code": "PL", "name": "Poland"}],
    "publishers": [
        {"code": "ACE", "name": "Ace Books", "founded": 1952},
        {"code": "GALL", "name": "Gallimard", "founded": None},
    ],
    "books": [
        {"isbn": "9780441478125", "title": "The Left Hand of Darkness", "author_id": 1, "publisher": "ACE",
         "pages": 304, "price": decimal.Decimal("9.99"), "tags": ["sf", "classic"], "attributes": {"award": "Hugo"}},
        {"isbn": "9782070368754", "title": "Mémoires d'Hadrien", "author_id": 2, "publisher": "GALL",
         "pages": 364, "price": decimal.Decimal("8.30"), "format": "hardcover", "tags": [], "attributes": None},
        {"isbn": "9780156027601", "title": "Solaris", "author_id": 3, "publisher": None, "pages": None,
         "price": None, "tags": None, "attributes": {"translated": True}},
    ],
    "stores": [
        {"id": STORE_LYON, "city": "Lyon", "opened_at": dt.datetime(2001, 3, 4, 9, 30), "online": False},
        {"id": STORE_WEB, "city": "Internet", "opened_at": None, "online": True, "kind": "online"},
    ],
    "stock": [
        {"isbn": "9780441478125", "store_id": STORE_LYON, "observed_at": dt.datetime(2026, 11, 20, 8, 0),
         "quantity": 3, "price": decimal.Decimal("9.50")},
        {"isbn": "9780441478125", "store_id": STORE_WEB, "observed_at": dt.datetime(2026, 11, 20, 8, 0),
         "quantity": 40, "price": decimal.Decimal("8.99")},
        {"isbn": "9782070368754", "store_id": STORE_LYON, "observed_at": dt.datetime(2026, 11, 21, 17, 45, 12),
         "quantity": 1, "price": None},
    ],
    "reviews": [
        {"isbn": "9780441478125", "reviewer": "ana", "stars": 5,
         "posted_at": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)},
        {"isbn": "9780156027601", "reviewer": "bo", "stars": 3,
         "posted_at": dt.datetime(2026, 2, 3, 4, 5, 6, tzinfo=dt.UTC)},
    ],
    "editions": [
        {"isbn": "9780441478125", "number": 1, "released": dt.date(1969, 3, 1)},
        {"isbn": "9780441478125", "number": 2, "released": None},
    ],
    "printings": [
        {"isbn": "9780441478125", "edition": 1, "run": 1, "copies": 5000},
        {"isbn": "9780441478125", "edition": 1, "run": 2, "copies": 2500},
    ],
}


def key_of(table: sa.Table) -> list[sa.Column]:
    """The columns that order a table's rows: its primary key, or its first unique constraint's."""
    if table.primary_key.columns:
        return list(table.primary_key.columns)
    return list(next(c for c in table.constraints if isinstance(c, sa.UniqueConstraint)).columns)


def build(url: str) -> None:
    """The application's own start: create_all, then its rows."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            metadata.create_all(connection)
            for name, rows in ROWS.items():
                for row in rows:  # one by one: a key left out takes the column's default
                    connection.execute(metadata.tables[name].insert(), row)
    finally:
        engine.dispose()
