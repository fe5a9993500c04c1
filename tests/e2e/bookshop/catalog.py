"""A bookshop of five related tables: a user's own catalog, as the e2e tests declare it outside depot."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Annotated

from depot import Catalog, ForeignKey, Ge, MaxLen, Numeric, OneOf, Pattern, References

CATALOG = Catalog()


@CATALOG.table("authors", group="primary", natural_key=("author_id",))
class Author:
    author_id: Annotated[str, Pattern(r"[a-z0-9-]+")]
    name: Annotated[str, MaxLen(120)]


@CATALOG.table("publishers", group="primary", natural_key=("code",))
class Publisher:
    code: Annotated[str, Pattern(r"[A-Z]{2,5}")]
    name: str


@CATALOG.table("books", group="secondary", natural_key=("isbn",))
class Book:
    isbn: Annotated[str, Pattern(r"97[89][0-9]{10}")]  # digits after "(?:" once wrapped: a CHECK that must stay intact
    title: str
    author_id: Annotated[str, References("authors")]
    publisher: Annotated[str | None, References("publishers", soft=True)] = None
    pages: Annotated[int | None, Ge(1)] = None


@CATALOG.table("stores", group="primary", natural_key=("store",))
class Store:
    store: str
    city: str
    kind: Annotated[str, OneOf(("shop", "online"))] = "shop"


@CATALOG.table("stock", group="instances", natural_key=("isbn", "store", "observed_on"), surrogate_id=True,
               references=(ForeignKey(("store",), "stores", ()),))
class Stock:
    isbn: Annotated[str, References("books")]
    store: str
    observed_on: dt.date
    price: Annotated[decimal.Decimal, Numeric(10, 2), Ge(0)]
    available: bool = True
