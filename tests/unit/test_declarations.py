"""The declaration language: what one dataclass turns into."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pytest
from annotated_types import Ge

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, ColumnType, ForeignKey, References, Renamed, Searchable


def test_a_catalog_starts_with_depots_system_tables_then_its_own_in_declaration_order():
    names = CATALOG.names
    assert names[:3] == ("sources", "ingest_batches", "rejected_rows")
    # a table after the tables it references (a table added to the example keeps this true)
    for position, table in enumerate(CATALOG):
        for fk in table.foreign_keys:
            assert fk.target == table.name or names.index(fk.target) < position
    assert [t.name for t in CATALOG.user_tables] == [n for n in names[3:] if not n.endswith(("_history", "_claims"))]
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


# --- the language's newer types and its refusals ----------------------------------------------------


def _declare(*, group: str = "primary", surrogate_id: bool = False, **annotations) -> Catalog:
    """A catalog with one table `t` whose columns are the given annotations, in order."""
    catalog = CATALOG.extend()
    cls = type("T", (), {"__annotations__": annotations})
    catalog.table("t", group=group, surrogate_id=surrogate_id)(cls)
    return catalog


def test_uuid_naive_timestamps_bounded_text_and_arrays_become_their_column_types():
    import uuid

    from annotated_types import MaxLen

    from domain.schema import Naive

    t = _declare(
        code=Annotated[str, MaxLen(8)], ref=uuid.UUID, at=Annotated[dt.datetime, Naive()], stamp=dt.datetime,
        tags=list[str], counts=list[int] | None, blob=list, doc=dict,
    )["t"]
    assert t.column("code").type is ColumnType.TEXT and t.column("code").max_length == 8
    assert t.column("ref").type is ColumnType.UUID
    assert t.column("at").type is ColumnType.TIMESTAMP and t.column("stamp").type is ColumnType.TIMESTAMPTZ
    assert (t.column("tags").type, t.column("tags").item, t.column("tags").type_name) == (
        ColumnType.ARRAY, ColumnType.TEXT, "text[]")
    assert t.column("counts").nullable and t.column("counts").type_name == "integer[]"
    assert t.column("blob").type is ColumnType.JSON and t.column("doc").type is ColumnType.JSON  # bare: jsonb


def test_gt_and_lt_become_strict_bounds():
    from annotated_types import Gt, Interval, Lt

    t = _declare(a=Annotated[float, Gt(0), Lt(1)], b=Annotated[int, Interval(gt=0, le=9)])["t"]
    assert (t.column("a").gt, t.column("a").lt, t.column("a").ge) == (0, 1, None)
    assert (t.column("b").gt, t.column("b").le, t.column("b").ge) == (0, 9, None)


@pytest.mark.parametrize("name", ["source", "batch_id", "version", "created_at", "updated_at"])
def test_a_column_named_like_a_system_column_is_refused_with_the_reserved_names(name: str):
    with pytest.raises(ValueError, match=rf"'{name}' is a name depot reserves") as refused:
        _declare(**{"code": str, name: int})
    assert "source, batch_id, version, created_at, updated_at" in str(refused.value)


def test_id_is_reserved_only_where_depot_adds_a_surrogate_id():
    with pytest.raises(ValueError, match=r"reserved here: id, source, batch_id"):
        _declare(surrogate_id=True, code=str, id=int)
    assert _declare(id=int, code=str)["t"].column("id").type is ColumnType.INTEGER


def test_the_reserved_names_are_the_system_columns_depot_adds():
    from domain.schema import reserved_names

    airlines = CATALOG["airlines"]
    # deleted_at too, which only soft_delete=True adds: a table can turn soft delete on later, never renaming
    added = (*(c.name for c in airlines.columns if c.system), "deleted_at")
    assert reserved_names("primary", surrogate_id=False) == added
    assert reserved_names("instances", surrogate_id=True) == ("id", *added)
    with pytest.raises(ValueError, match="deleted_at"):
        _declare(code=str, deleted_at=str)


def test_soft_delete_adds_deleted_at_named_by_the_catalogs_setting():
    from domain.schema import Catalog

    for catalog, name in ((Catalog(), "deleted_at"), (Catalog(system_columns="_depot_"), "_depot_deleted_at")):
        catalog.table("notes", group="primary", soft_delete=True)(type("N", (), {"__annotations__": {"code": str}}))
        catalog.table("plain", group="primary")(type("P", (), {"__annotations__": {"code": str}}))
        notes = catalog["notes"]
        assert notes.soft_delete and notes.system.deleted_at == name
        column = notes.column(name)
        assert (column.system, column.nullable, column.type) == (True, True, ColumnType.TIMESTAMPTZ)
        assert not catalog["plain"].soft_delete and not catalog["plain"].has_column(name)
        # the history keeps the column as data, so the history table itself is not soft-deleting
        assert catalog["notes_history"].has_column(name) and not catalog["notes_history"].soft_delete
    renamed = Catalog().with_system_columns("x_")
    renamed.table("notes", group="primary", soft_delete=True)(type("N", (), {"__annotations__": {"code": str}}))
    assert renamed["notes"].system.deleted_at == "x_deleted_at"


def test_soft_delete_is_refused_outside_the_groups_with_system_columns():
    with pytest.raises(ValueError, match="soft_delete=True is for the tables of the groups"):
        CATALOG.extend().table("t", group="ingestion", soft_delete=True)(type("T", (), {"__annotations__": {"a": str}}))


def test_an_unknown_group_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown group 'primray'; the groups are primary, secondary, instances, "
                                         r"ingestion"):
        _declare(group="primray", code=str)


@pytest.mark.parametrize(("annotation", "message"), [
    (list[float], "arrays hold str or int"),
    (list[list[int]], "arrays hold str or int"),
    (Annotated[list[str], Ge(0)], "Ge/Le/Gt/Lt take"),
    (Annotated[int, "MaxLen"], "unsupported metadata"),
    (Annotated[dt.date, Ge(dt.date(2000, 1, 1))], "Ge/Le/Gt/Lt take"),
    (Annotated[str, Ge(0)], "Ge/Le/Gt/Lt take"),
    (Annotated[int, Searchable()], "Searchable\\(\\) marks a str column"),
    (Annotated[list[str], Searchable()], "Searchable\\(\\) marks a str column"),
    (Annotated[str, Searchable("klingon")], "the configurations are simple, english"),
])
def test_a_declaration_that_no_layer_could_honour_is_refused(annotation, message: str):
    with pytest.raises(TypeError, match=message):
        _declare(code=str, x=annotation)


def test_maxlen_and_naive_apply_to_their_own_types_only():
    from annotated_types import MaxLen

    from domain.schema import Naive

    with pytest.raises(TypeError, match="MaxLen bounds a str column"):
        _declare(code=str, x=Annotated[list[str], MaxLen(3)])
    with pytest.raises(TypeError, match="Naive"):
        _declare(code=str, x=Annotated[dt.date, Naive()])


def test_an_array_cannot_be_a_key_or_carry_checks():
    from domain.schema import Pattern

    with pytest.raises(ValueError, match="cannot be in a key"):
        _declare(tags=list[str])  # the first column is the natural key by default
    with pytest.raises(TypeError, match="an array column takes no pattern"):
        _declare(code=str, tags=Annotated[list[str], Pattern("[a-z]+")])


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


def test_a_catalog_can_move_its_system_columns_aside_for_a_table_that_uses_their_names():
    from depot import SystemColumns

    catalog = Catalog(system_columns="_depot_")

    @catalog.table("packages", group="primary", natural_key=("name",))
    class Package:
        name: str
        version: str
        source: str | None = None
        created_at: dt.datetime | None = None

    spec = catalog["packages"]
    assert spec.system == SystemColumns.prefixed("_depot_")
    assert spec.column_names == ("name", "version", "source", "created_at", "_depot_source", "_depot_batch_id",
                                 "_depot_version", "_depot_created_at", "_depot_updated_at")
    assert not spec.column("version").system and spec.column("_depot_version").system
    assert spec.has_provenance and spec.has_versions
    assert spec.system.role_of("_depot_version") == "version" and spec.system.role_of("version") is None


def test_a_table_can_name_its_system_columns_over_the_catalog():
    catalog = Catalog()

    @catalog.table("articles", group="secondary", natural_key=("url",), system_columns="sys_")
    class Article:
        url: str
        source: str

    @catalog.table("plain", group="secondary", natural_key=("k",))
    class Plain:
        k: str

    assert catalog["articles"].system.source == "sys_source"
    assert catalog["plain"].system.source == "source"


def test_a_clash_with_the_default_names_says_how_to_move_them_aside():
    catalog = Catalog()
    with pytest.raises(ValueError, match="system_columns"):
        @catalog.table("packages", group="primary", natural_key=("name",))
        class Package:
            name: str
            version: str


def test_a_catalog_with_other_system_column_names_moves_only_its_own_tables_columns():
    prefixed = CATALOG.with_system_columns("_depot_")
    flights, sources = prefixed["flights"], prefixed["sources"]
    assert flights.system.version == "_depot_version" and flights.column("_depot_version").system
    assert ("_depot_source",) in [fk.columns for fk in flights.foreign_keys]
    assert not flights.has_column("source") and flights.has_provenance
    assert [c.name for c in flights.columns if not c.system] == [c.name for c in CATALOG["flights"].columns
                                                                 if not c.system]
    assert sources == CATALOG["sources"]  # depot's own tables keep their names
    assert prefixed.names == CATALOG.names


def test_a_searchable_column_names_its_generated_column_and_may_not_be_shadowed():
    table = _declare(code=str, body=Annotated[str, Searchable("english")])["t"]
    assert table.column("body").searchable == "english" and not table.has_column("body_tsv")
    with pytest.raises(ValueError, match="body_tsv is the name of body's generated search column"):
        _declare(code=str, body=Annotated[str, Searchable()], body_tsv=str)


@pytest.mark.parametrize("system_schema, says", [
    ("Depot", "lower-case letters"), ("depot-tables", "lower-case letters"), ("pg_depot", "pg_"),
    ("", "lower-case letters"), ("shop", "the catalog's own schema"),
])
def test_a_system_schema_that_postgres_would_not_keep_as_is_is_refused_at_declaration(system_schema, says):
    with pytest.raises(ValueError, match=says):
        Catalog(schema="shop", system_schema=system_schema)


def test_depots_own_tables_live_in_the_system_schema_and_the_catalogs_in_its_own():
    catalog = Catalog(schema="shop", system_schema="bookkeeping")
    assert [catalog.schema_of(n) for n in ("sources", "ingest_batches", "rejected_rows")] == ["bookkeeping"] * 3
    assert Catalog().system_schema == "depot" and catalog.extend().system_schema == "bookkeeping"
    assert catalog.with_system_columns("_d_").system_schema == "bookkeeping"


def test_a_natural_key_that_may_repeat_needs_a_surrogate_id_and_pages_end_with_it():
    from domain.query import OrderBy, Read

    with pytest.raises(ValueError, match="needs surrogate_id=True"):
        CATALOG.extend().table("t", group="instances", natural_key=("a",), unique_natural_key=False)(
            type("T", (), {"__annotations__": {"a": str}}))
    catalog = CATALOG.extend()
    catalog.table("seen", group="instances", natural_key=("a",), surrogate_id=True, unique_natural_key=False)(
        type("S", (), {"__annotations__": {"a": str}}))
    catalog.table("notes", group="instances", natural_key=("n",), surrogate_id=True,
                  references=(ForeignKey(("seen_id",), "seen", ()),))(
        type("N", (), {"__annotations__": {"n": str, "seen_id": int}}))
    seen = catalog["seen"]
    assert not seen.unique_natural_key and not seen.keeps_claims and "seen_claims" not in catalog
    # a key that may repeat does not make an order total: the id ends it
    assert Read(order=(OrderBy("a"),)).keyset_order(seen) == (OrderBy("a"), OrderBy("id"))
    # and a reference to such a table points at its id, not at its natural key
    assert [fk.target_columns for fk in catalog["notes"].foreign_keys if fk.target == "seen"] == [("id",)]
