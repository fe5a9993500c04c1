"""Citus declarations: distribute_by= and reference=True, refused at declaration where Citus could not
hold them, and the DDL a migration gets for them. No Citus server runs here: the text is what is tested."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pytest

from adapters.postgres.citus import citus_statements
from domain.schema import Catalog, References


def shop() -> Catalog:
    catalog = Catalog()

    @catalog.table("countries", group="primary", natural_key=("code",), reference=True)
    class Country:
        code: str
        name: str

    @catalog.table("stores", group="primary", natural_key=("store",), distribute_by="store")
    class Store:
        store: str
        country: Annotated[str, References("countries")]

    @catalog.table("sales", group="instances", natural_key=("store", "sold_at"), surrogate_id=True,
                   distribute_by="store")
    class Sale:
        store: Annotated[str, References("stores")]
        sold_at: dt.datetime
        amount: float

    return catalog


def test_a_valid_distribution_is_kept_on_the_declaration():
    catalog = shop()
    assert catalog["countries"].reference and catalog["countries"].distribute_by is None
    assert catalog["sales"].distribute_by == "store"


def test_the_ddl_makes_references_first_then_distributes_and_widens_a_surrogate_key():
    catalog = shop()
    statements = citus_statements(catalog, ["countries", "stores", "sales"])
    acts = [s.split(" THEN ")[2] for s in statements]
    assert acts[:3] == ["PERFORM create_reference_table('depot.sources'); END IF; END IF; END $$",
                        "PERFORM create_reference_table('depot.ingest_batches'); END IF; END IF; END $$",
                        "PERFORM create_reference_table('countries'); END IF; END IF; END $$"]
    assert acts[3] == "PERFORM create_distributed_table('stores', 'store'); END IF; END IF; END $$"
    assert acts[4].startswith('ALTER TABLE "sales" DROP CONSTRAINT "pk_sales", '
                              'ADD CONSTRAINT "pk_sales" PRIMARY KEY ("id", "store"); ')
    assert acts[4].endswith("PERFORM create_distributed_table('sales', 'store'); END IF; END IF; END $$")
    for statement in statements:  # a no-op on plain PostgreSQL, and once only on Citus
        assert statement.startswith("DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') "
                                    "THEN IF NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = '")


def test_no_ddl_for_a_catalog_without_distribution():
    from depot.examples.flights.catalog import CATALOG

    assert citus_statements(CATALOG, list(CATALOG.names)) == []


def test_a_unique_key_without_the_distribution_column_is_refused():
    catalog = Catalog()
    with pytest.raises(ValueError, match=r"unique key \(name\) must include the distribution column 'region'"):

        @catalog.table("shops", group="primary", natural_key=("name",), distribute_by="region")
        class Shop:
            name: str
            region: str


def test_a_further_unique_set_without_the_distribution_column_is_refused():
    catalog = Catalog()
    with pytest.raises(ValueError, match=r"unique key \(email\)"):

        @catalog.table("users", group="primary", natural_key=("region", "name"), unique=(("email",),),
                       distribute_by="region")
        class User:
            region: str
            name: str
            email: str


def test_a_reference_to_a_plain_table_is_refused():
    catalog = Catalog()

    @catalog.table("countries", group="primary", natural_key=("code",))
    class Country:
        code: str

    with pytest.raises(ValueError, match="must point at a reference table.*countries is not distributed"):

        @catalog.table("shops", group="primary", natural_key=("shop",), distribute_by="shop")
        class Shop:
            shop: str
            country: Annotated[str, References("countries")]


def test_a_reference_that_is_not_co_located_is_refused():
    catalog = Catalog()

    @catalog.table("stores", group="primary", natural_key=("store",), distribute_by="store")
    class Store:
        store: str

    with pytest.raises(ValueError, match="co-located.*stores is distributed by 'store'"):

        @catalog.table("visits", group="instances", natural_key=("customer", "store"), surrogate_id=True,
                       distribute_by="customer")
        class Visit:
            customer: str
            store: Annotated[str, References("stores")]


def test_a_soft_reference_needs_no_co_location():
    catalog = Catalog()

    @catalog.table("stores", group="primary", natural_key=("store",), distribute_by="store")
    class Store:
        store: str

    @catalog.table("visits", group="instances", natural_key=("customer", "store"), surrogate_id=True,
                   distribute_by="customer")
    class Visit:
        customer: str
        store: Annotated[str, References("stores", soft=True)]

    assert catalog["visits"].distribute_by == "customer"


def test_a_reference_table_may_only_point_at_reference_tables():
    catalog = Catalog()

    @catalog.table("stores", group="primary", natural_key=("store",), distribute_by="store")
    class Store:
        store: str

    with pytest.raises(ValueError, match="a reference table's reference store must point at a reference table"):

        @catalog.table("labels", group="primary", natural_key=("label",), reference=True)
        class Label:
            label: str
            store: Annotated[str, References("stores")]


@pytest.mark.parametrize(("options", "message"), [
    ({"distribute_by": "code", "reference": True}, "either distributed"),
    ({"distribute_by": "nope"}, "unknown column 'nope'"),
    ({"distribute_by": "note"}, "must not be nullable"),
])
def test_impossible_distributions_are_refused(options, message):
    catalog = Catalog()
    with pytest.raises(ValueError, match=message):

        @catalog.table("things", group="primary", natural_key=("code",), **options)
        class Thing:
            code: str
            note: str | None = None
