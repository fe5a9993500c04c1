"""The declaration language: what one dataclass turns into."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pytest
from annotated_types import Ge

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, ColumnType, ForeignKey, References, Renamed


def test_a_catalog_starts_with_depots_system_tables_then_its_own_in_declaration_order():
    names = CATALOG.names
    assert names[:3] == ("sources", "ingest_batches", "rejected_rows")
    # a table after the tables it references (a table added to the example keeps this true)
    for position, table in enumerate(CATALOG):
        for fk in table.foreign_keys:
            assert fk.target == table.name or names.index(fk.target) < position
    assert [t.name for t in CATALOG.user_tables] == list(names[3:])
    assert Catalog().names == names[:3]


def test_instance_tables_get_a_surrogate_id_and_keep_their_natural_key():
    flights = CATALOG["flights"]
    assert flights.primary_key == ("id",)
    assert flights.natural_key == ("year", "month", "day", "carrier", "flight", "origin")
    assert flights.column("id").generated and flights.column("id").type is ColumnType.BIGINT


def test_system_columns_follow_the_group():
    assert CATALOG["airlines"].column_names[-5:] == ("source", "batch_id", "version", "created_at", "updated_at")
    assert CATALOG["sources"].column_names[-3:] == ("version", "created_at", "updated_at")
    assert not CATALOG["sources"].has_column("source")
    assert not CATALOG["ingest_batches"].has_column("version")


def test_references_resolve_to_the_target_key_and_keep_softness():
    fks = {fk.name: fk for fk in CATALOG["flights"].foreign_keys}
    assert (fks["dest"].target, fks["dest"].target_columns, fks["dest"].soft) == ("airports", ("faa",), False)
    assert fks["tailnum"].soft
    fares = {fk.name: fk for fk in CATALOG["fares"].foreign_keys}
    assert fares["carrier_origin_dest"].target_columns == ("carrier", "origin", "dest")


def test_declared_checks_become_column_metadata():
    airports = CATALOG["airports"]
    assert (airports.column("lat").ge, airports.column("lat").le) == (-90, 90)
    assert CATALOG["fares"].column("cabin").choices == ("economy", "premium", "business", "first")
    price = CATALOG["fares"].column("price")
    assert (price.type, price.precision, price.scale, price.ge) == (ColumnType.NUMERIC, 12, 2, 0)


def test_a_reference_to_an_undeclared_table_is_refused():
    catalog = Catalog()
    with pytest.raises(ValueError, match="undeclared table"):

        @catalog.table("orphans", group="ingestion")
        class Orphan:
            parent: Annotated[str, References("parents")]


def test_a_key_naming_an_unknown_column_is_refused():
    catalog = CATALOG.extend()
    with pytest.raises(ValueError, match="unknown columns"):

        @catalog.table("things", group="primary", natural_key=("nope",))
        class Thing:
            name: str


def test_unsupported_types_are_refused_at_declaration():
    catalog = CATALOG.extend()
    with pytest.raises(TypeError, match="unsupported type"):

        @catalog.table("things", group="primary")
        class Thing:
            name: complex


def test_a_table_declared_twice_is_refused():
    catalog = CATALOG.extend()
    with pytest.raises(ValueError, match="declared twice"):

        @catalog.table("airlines", group="primary")
        class Again:
            carrier: str


def test_composite_references_are_declared_on_the_table():
    catalog = CATALOG.extend()

    @catalog.table("route_notes", group="instances", surrogate_id=True,
                   natural_key=("carrier", "origin", "dest", "at"),
                   references=(ForeignKey(("carrier", "origin", "dest"), "routes", ()),))
    class RouteNote:
        carrier: str
        origin: str
        dest: str
        at: dt.datetime
        stars: Annotated[int, Ge(0)] = 0

    spec = catalog["route_notes"]
    assert spec.hard_foreign_keys[-1].target_columns == ("carrier", "origin", "dest")
    assert spec.column("stars").default == 0 and not spec.column("stars").required


def test_a_rename_is_declared_on_the_new_column():
    import depot

    assert depot.Renamed is Renamed  # what a user's catalog imports
    catalog = Catalog()

    @catalog.table("books", group="primary", natural_key=("isbn",))
    class Book:
        isbn: str
        page_count: Annotated[int | None, Renamed("pages"), Ge(1)] = None

    column = catalog["books"].column("page_count")
    assert (column.renamed_from, column.ge, column.nullable) == ("pages", 1, True)
    assert catalog["books"].column("isbn").renamed_from is None
