"""Dispositions on both adapters: insert_only, replace_partition (retiring under the priority rule), delete."""

from __future__ import annotations

import pytest

from domain.errors import BadRequest
from domain.query import Query
from service_layer import ingest, services
from service_layer.ingest import Chunk
from tests.ingesting import run

ROUTES = ["carrier", "origin", "dest", "distance"]


@pytest.fixture
def uow(uow_factory):
    uow = uow_factory()
    services.create_rows(uow, "sources", [
        {"code": "scraper", "name": "Scraper", "priority": 1},
        {"code": "official", "name": "Official", "priority": 5},
    ])
    services.create_rows(uow, "airlines", [{"carrier": c, "name": c} for c in ("AA", "UA")])
    services.create_rows(uow, "airports", [
        {"faa": f, "name": f, "lat": 40.0, "lon": -73.0, "alt": 0} for f in ("JFK", "LGA", "EWR", "ORD", "LAX")])
    return uow


def routes(uow):
    source = uow.catalog["routes"].system.source  # `source`, or the name the catalog gives it
    return {(r["carrier"], r["origin"], r["dest"]): (r["distance"], r[source])
            for r in services.list_rows(uow, "routes", Query()).rows}


def send(uow, rows, **kwargs):
    return run(uow, "routes", [], chunks=[Chunk(rows, ROUTES)], **kwargs)


def test_insert_only_leaves_stored_keys_unchanged(uow):
    send(uow, [["AA", "JFK", "ORD", "740"]], source="scraper")
    report = send(uow, [["AA", "JFK", "ORD", "999"], ["UA", "EWR", "LAX", "2454"]], source="official",
                  disposition="insert_only")
    assert (report.inserted, report.updated, report.unchanged, report.disposition) == (1, 0, 1, "insert_only")
    assert routes(uow)[("AA", "JFK", "ORD")] == (740.0, "scraper")
    assert ingest.get_batch(uow, report.batch_id)["disposition"] == "insert_only"


def test_replace_partition_retires_what_the_snapshot_lacks(uow):
    send(uow, [["AA", "JFK", "ORD", "740"], ["AA", "JFK", "LAX", "2475"], ["AA", "LGA", "ORD", "733"],
               ["UA", "EWR", "ORD", "719"]], source="scraper")
    report = send(uow, [["AA", "JFK", "ORD", "741"]], source="scraper", disposition="replace_partition",
                  partition=("carrier", "origin"))
    assert (report.updated, report.retired) == (1, 1)
    # AA/JFK is the partition covered: AA/JFK/LAX goes; AA/LGA and UA/EWR are other partitions
    assert set(routes(uow)) == {("AA", "JFK", "ORD"), ("AA", "LGA", "ORD"), ("UA", "EWR", "ORD")}
    assert ingest.get_batch(uow, report.batch_id)["retired"] == 1


def test_replace_partition_retires_nothing_a_stronger_source_owns(uow):
    send(uow, [["AA", "JFK", "ORD", "740"]], source="scraper")
    send(uow, [["AA", "JFK", "LAX", "2475"]], source="official")
    report = send(uow, [["AA", "JFK", "ORD", "741"]], source="scraper", disposition="replace_partition",
                  partition=("carrier", "origin"))
    assert report.retired == 0
    assert set(routes(uow)) == {("AA", "JFK", "ORD"), ("AA", "JFK", "LAX")}


def test_replace_partition_with_a_rejected_row_retires_nothing(uow):
    send(uow, [["AA", "JFK", "ORD", "740"], ["AA", "JFK", "LAX", "2475"]], source="scraper")
    report = send(uow, [["AA", "JFK", "ORD", "741"], ["AA", "JFK", "XXX", "1"]], source="scraper",
                  disposition="replace_partition", partition=("carrier", "origin"))
    assert (report.rejected, report.retired) == (1, 0)
    assert report.warnings[0]["code"] == "not_retired"
    assert len(routes(uow)) == 2


def test_delete_removes_the_keys_under_the_priority_rule(uow):
    send(uow, [["AA", "JFK", "ORD", "740"], ["UA", "EWR", "LAX", "2454"]], source="scraper")
    send(uow, [["AA", "LGA", "ORD", "733"]], source="official")
    report = run(uow, "routes", [{"carrier": "AA", "origin": "JFK", "dest": "ORD", "distance": 1},
                                 {"carrier": "AA", "origin": "LGA", "dest": "ORD"},
                                 {"carrier": "AA", "origin": "EWR", "dest": "ORD"},
                                 {"carrier": "AA", "origin": "JFK"}],
                 source="scraper", disposition="delete")
    assert (report.deleted, report.superseded, report.unchanged, report.rejected) == (1, 1, 1, 1)
    assert report.errors[0]["field"] == "dest"
    assert set(routes(uow)) == {("UA", "EWR", "LAX"), ("AA", "LGA", "ORD")}


def test_delete_from_a_csv_ignores_the_other_columns(uow):
    send(uow, [["AA", "JFK", "ORD", "740"]], source="scraper")
    report = send(uow, [["AA", "JFK", "ORD", "not a number"]], source="official", disposition="delete")
    assert report.deleted == 1 and routes(uow) == {}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"disposition": "append"}, "routes has no surrogate id"),  # a reference table: rows keyed by the natural key
    ({"disposition": "merge"}, "not one of"),
    ({"disposition": "replace_partition"}, "needs partition="),
    ({"disposition": "replace_partition", "partition": ("colour",)}, "not a data column"),
    ({"partition": ("carrier",)}, "replace_partition only"),
    ({"disposition": "insert_only", "on_conflict": "error"}, "sets on_conflict itself"),
])
def test_bad_dispositions_are_refused_before_a_batch_begins(uow, kwargs, message):
    with pytest.raises(BadRequest, match=message):
        send(uow, [["AA", "JFK", "ORD", "740"]], **kwargs)
    assert ingest.list_batches(uow, limit=5, offset=0).rows == []
