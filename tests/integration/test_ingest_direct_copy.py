"""The direct-COPY path (a chunk whose keys are all new goes straight into its table) against the
staged merge: the same batches give the same stores and the same reports, whichever path wrote."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from adapters.postgres.ingest import SqlAlchemyIngestRepository
from adapters.postgres.tables import system_table_sql
from depot.examples.flights.catalog import CATALOG
from service_layer import ingest
from service_layer.ingest import Chunk, IngestRequest
from tests.conftest import truncate_all

pytestmark = pytest.mark.postgres

_STAGE = SqlAlchemyIngestRepository._stage
NOW = dt.datetime(2026, 11, 27, 8, 0, tzinfo=dt.UTC)
AIRLINES = [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}]
AIRPORTS = [
    {"faa": "JFK", "name": "Kennedy", "lat": 40.6, "lon": -73.8, "alt": 13, "tz": -5, "dst": "A",
     "tzone": "America/New_York"},
    {"faa": "EWR", "name": "Newark", "lat": 40.7, "lon": -74.2, "alt": 18},  # nulls in tz, dst, tzone
    {"faa": "LAX", "name": "Los Angeles, \"LAX\"", "lat": 33.9, "lon": -118.4, "alt": 126, "tz": -8},
]


def flight(day: int, number: int, **changes) -> dict:
    row = {"year": 2013, "month": 1, "day": day, "dep_time": 517, "sched_dep_time": 515, "dep_delay": 2.0,
           "arr_time": None, "sched_arr_time": 819, "arr_delay": None, "carrier": "UA", "flight": number,
           "tailnum": None, "origin": "JFK", "dest": "LAX", "air_time": 227.0, "distance": 1400.0, "hour": 5,
           "minute": 15, "time_hour": "2013-01-01T10:00:00Z"}
    return {**row, **changes}


# Each batch: (table, chunks). File order deliberately differs from key order.
BATCHES = [
    ("airlines", [AIRLINES]),
    ("airports", [AIRPORTS[:2], AIRPORTS[2:]]),
    ("flights", [[flight(3, 9), flight(1, 7), flight(2, 8, carrier="AA")]]),
    ("flights", [  # a re-load with one change, one new row, one invalid row and one dangling reference
        [flight(1, 7), flight(3, 9, dep_delay=-4.0), flight(4, 1)],
        [flight(5, 2, month=13), flight(6, 3, dest="XXX"), flight(2, 8, carrier="AA")],
    ]),
    ("airports", [[{**AIRPORTS[0], "alt": 14}, {"faa": "SFO", "name": "San Francisco", "lat": 37.6,
                                                 "lon": -122.4, "alt": 4}]]),
    # a weaker source: its changed row is superseded and kept as its claim, its new row inserted
    ("flights", [[flight(1, 7, dep_delay=30.0), flight(7, 4)]], "weak"),
]
# Every table the batches write, history and claims included; all compared whole (ids too).
WRITTEN = ("airlines", "airports", "flights", "airlines_history", "airports_history", "flights_history",
           "flights_claims", "ingest_batches", "rejected_rows")


def relation(name: str) -> str:
    return system_table_sql(CATALOG, name) if name in ("ingest_batches", "rejected_rows") else name


def dump(engine) -> dict[str, list]:
    with engine.connect() as connection:
        return {t: [tuple(r) for r in connection.execute(sa.text(f"SELECT * FROM {relation(t)} ORDER BY 1, 2, 3"))]
                for t in WRITTEN}


def as_csv(chunks: list[list[dict]]) -> list[Chunk]:
    """The chunks as a CSV body's: text values under the body's one header (a missing value is null)."""
    header = list(dict.fromkeys(name for rows in chunks for row in rows for name in row))
    return [Chunk([[None if row.get(name) is None else str(row[name]) for name in header] for row in rows], header)
            for rows in chunks]


def load(pg_uow, monkeypatch, *, direct: bool, csv: bool = False) -> tuple[list[dict], dict[str, list]]:
    monkeypatch.setattr(SqlAlchemyIngestRepository, "direct_copy", direct)
    staged = []
    monkeypatch.setattr(SqlAlchemyIngestRepository, "_stage",
                        lambda self, table, *args: staged.append(table.name) or _STAGE(self, table, *args))
    with pg_uow() as uow:
        uow.repository("sources").add([{"code": "weak", "name": "Weak", "priority": -1}])
        uow.commit()
    reports = []
    for table, chunks, *source in BATCHES:
        request = IngestRequest(table, *source)
        body = as_csv(chunks) if csv else [Chunk(rows) for rows in chunks]
        report = ingest.ingest_batch(pg_uow(), request, body, clock=lambda: NOW)
        reports.append(report.as_dict())
    return reports, staged


def test_the_direct_copy_and_the_merge_give_the_same_stores_and_reports(pg_uow, pg_engine, catalog, monkeypatch):
    merged_reports, merged_staged = load(pg_uow, monkeypatch, direct=False)
    merged = dump(pg_engine)
    truncate_all(pg_engine, catalog)
    copied_reports, copied_staged = load(pg_uow, monkeypatch, direct=True)
    copied = dump(pg_engine)

    assert copied_reports == merged_reports
    assert [r["inserted"] for r in copied_reports] == [2, 3, 3, 1, 1, 1]
    assert (copied_reports[-1]["superseded"], len(copied["flights_claims"])) == (1, 1)
    assert len(copied["flights_history"]) == 6  # 3 first versions, then 1 update and 1 insert, then 1 insert
    for table in WRITTEN:
        assert copied[table] == merged[table], table
    # The first loads skipped the staging table, flights (a surrogate id, probed) too; the re-loads
    # (stored keys) went through it, but not a chunk whose rows were all unchanged (the second chunk
    # of the flights re-load): compared with the stored rows, it went no further.
    assert copied_staged == ["flights", "airports", "flights"]
    assert merged_staged == ["airlines", "airports", "airports", "flights", "flights", "airports", "flights"]


def test_csv_bodies_encoded_while_validated_give_the_same_stores_and_reports(pg_uow, pg_engine, catalog,
                                                                             monkeypatch):
    """A CSV body's rows are encoded for COPY in the validating thread (bulk_encoder), and its re-loads are
    compared with the stored rows in PostgreSQL once staged: the same stores and reports as the JSON
    bodies' path, by the direct COPY and by the merge."""
    json_reports, _ = load(pg_uow, monkeypatch, direct=True)
    expected = dump(pg_engine)
    for direct in (True, False):
        truncate_all(pg_engine, catalog)
        reports, staged = load(pg_uow, monkeypatch, direct=direct, csv=True)
        assert reports == json_reports, direct
        stored = dump(pg_engine)
        for table in WRITTEN:
            if table == "rejected_rows":  # the payloads differ as the bodies do: text values, not JSON ones
                assert [r[:3] for r in stored[table]] == [r[:3] for r in expected[table]]  # id, batch, row number
                continue
            assert stored[table] == expected[table], (direct, table)
        # Every chunk that met stored keys was staged, the all-unchanged one too: compared in PostgreSQL.
        assert staged == (["flights", "flights", "airports", "flights"] if direct else
                          ["airlines", "airports", "airports", "flights", "flights", "flights", "airports", "flights"])


def test_a_first_load_draws_ids_in_file_order(pg_uow, pg_engine):
    ingest.ingest_batch(pg_uow(), IngestRequest("airlines"), [Chunk(AIRLINES)])
    ingest.ingest_batch(pg_uow(), IngestRequest("airports"), [Chunk(AIRPORTS)])
    rows = [flight(3, 9), flight(1, 7), flight(2, 8)]
    ingest.ingest_batch(pg_uow(), IngestRequest("flights"), [Chunk(rows)])
    with pg_engine.connect() as connection:
        days = [r[0] for r in connection.execute(sa.text("SELECT day FROM flights ORDER BY id"))]
    assert days == [3, 1, 2]


def test_a_chunk_whose_copy_fails_leaves_nothing_behind_and_is_merged(pg_uow, pg_engine):
    """A stored key makes the COPY fail part-way: its savepoint takes back what it wrote."""
    ingest.ingest_batch(pg_uow(), IngestRequest("airlines"), [Chunk(AIRLINES[1:])])
    report = ingest.ingest_batch(pg_uow(), IngestRequest("airlines"),
                                 [Chunk([{"carrier": "B6", "name": "JetBlue"}, *AIRLINES])])
    assert (report.inserted, report.unchanged) == (2, 1)
    with pg_engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM airlines")).scalar_one() == 3


def test_new_keys_among_stored_ones_are_copied_and_a_stored_one_is_merged(pg_uow, pg_engine, monkeypatch):
    """The probe of a table with a surrogate id: keys between stored ones (the range holds stored keys)
    but none stored still take the direct COPY, with ids in file order; one stored key sends the chunk
    to the merge, and no id is drawn for nothing."""
    staged = []
    monkeypatch.setattr(SqlAlchemyIngestRepository, "_stage",
                        lambda self, table, *args: staged.append(table.name) or _STAGE(self, table, *args))
    ingest.ingest_batch(pg_uow(), IngestRequest("airlines"), [Chunk(AIRLINES)])
    ingest.ingest_batch(pg_uow(), IngestRequest("airports"), [Chunk(AIRPORTS)])
    ingest.ingest_batch(pg_uow(), IngestRequest("flights"), [Chunk([flight(1, 7), flight(9, 7)])])
    between = ingest.ingest_batch(pg_uow(), IngestRequest("flights"), [Chunk([flight(5, 7), flight(3, 7)])])
    assert (between.inserted, staged) == (2, [])
    mixed = ingest.ingest_batch(pg_uow(), IngestRequest("flights"),
                                [Chunk([flight(4, 7), flight(9, 7, dep_delay=1.0)])])
    assert (mixed.inserted, mixed.updated, staged) == (1, 1, ["flights"])
    with pg_engine.connect() as connection:
        ids = connection.execute(sa.text("SELECT day, id FROM flights ORDER BY id")).all()
    assert [tuple(r) for r in ids] == [(1, 1), (9, 2), (5, 3), (3, 4), (4, 5)]


def test_a_connection_stages_a_table_in_one_temporary_table_emptied_at_each_commit(pg_uow):
    """A staging table made and dropped per chunk wrote rows into PostgreSQL's catalogs each time: it is
    made once per connection and table, emptied by each commit, made again when a rollback took it away,
    and emptied before a second staging in one transaction."""
    from adapters.postgres.ingest import _stage_of
    from domain.ingestion import data_columns

    table = CATALOG["airlines"]
    stage = _stage_of(table)
    uow = pg_uow()
    seen = []
    with uow.held():
        with uow:  # the pooled connection may have staged airlines in a test before
            uow.ingestion().connection.exec_driver_sql(f"DROP TABLE IF EXISTS {stage}")
            uow.commit()
        for ending in ("rollback", "commit", "commit"):
            with uow:
                ingestion = uow.ingestion()
                before = ingestion.connection.exec_driver_sql(f"SELECT to_regclass('{stage}')::oid").scalar()
                ingestion._stage(table, data_columns(table), AIRLINES)
                ingestion._stage(table, data_columns(table), AIRLINES[:1])
                staged = ingestion.connection.exec_driver_sql(f"SELECT carrier FROM {stage}").scalars().all()
                oid = ingestion.connection.exec_driver_sql(f"SELECT to_regclass('{stage}')::oid").scalar()
                seen.append((before, staged, oid))
                uow.rollback() if ending == "rollback" else uow.commit()
            if ending == "commit":
                with uow:
                    left = uow.ingestion().connection.exec_driver_sql(f"SELECT count(*) FROM {stage}").scalar()
                    assert left == 0
    (before1, staged1, made1), (before2, staged2, made2), (before3, staged3, made3) = seen
    assert staged1 == staged2 == staged3 == ["AA"]
    assert before1 is None and before2 is None  # the rollback took the first one away
    assert before3 == made3 == made2  # kept from the commit before: the same table
    assert _stage_of(CATALOG["airports"]) != stage
