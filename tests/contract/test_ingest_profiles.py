"""Source profiles on both adapters: names mapped, formats read, constants set, contracts kept, replays alike."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import BadRequest
from domain.query import Query
from service_layer import ingest, services
from service_layer.ingest import Chunk
from tests.ingesting import run

PLANES_PROFILE = {
    "match": "normalized",
    "columns": {"Tail Number": "tailnum", "Built": "year", "Seat count": "seats"},
    "contract": {"unknown": "discard"},
    "formats": {"null": ["NA", "-"]},
}


@pytest.fixture
def uow(uow_factory):
    uow = uow_factory()
    services.create_rows(uow, "sources", [
        {"code": "registry", "name": "Registry", "priority": 1, "profile": {"tables": {"planes": PLANES_PROFILE}}},
        {"code": "met", "name": "Met office", "priority": 1, "profile": {
            "columns": {"Station": "origin", "When": "time_hour", "Temp (F)": "temp"},
            "formats": {"timestamp": "%m/%d/%Y %H:%M", "timezone": "America/New_York", "decimal_comma": True},
            "cursor": "time_hour"}},
    ])
    services.create_rows(uow, "manufacturers", [{"name": "BOEING"}, {"name": "EMBRAER"}])
    services.create_rows(uow, "airports", [{"faa": "EWR", "name": "Newark", "lat": 40.7, "lon": -74.2, "alt": 18}])
    return uow


def rows_of(uow, table):
    return services.list_rows(uow, table, Query()).rows


def test_a_csv_header_is_mapped_and_extra_columns_dropped(uow):
    header = ["MANUFACTURER", "Seat count", "tail-number", "Built", "Colour", "ENGINES"]
    report = run(uow, "planes", [], source="registry", chunks=[Chunk([
        ["BOEING", "149", "N10156", "2004", "white", "2"],
        ["EMBRAER", "NA", "N102UW", "-", "blue", "2"],
    ], header)])
    assert (report.received, report.inserted, report.rejected) == (2, 2, 0)
    planes = {p["tailnum"]: p for p in rows_of(uow, "planes")}
    assert (planes["N10156"]["seats"], planes["N10156"]["year"], planes["N10156"]["engines"]) == (149, 2004, 2)
    assert (planes["N102UW"]["seats"], planes["N102UW"]["year"]) == (None, None)


def test_json_rows_take_the_same_profile(uow):
    report = run(uow, "planes", [{"Tail Number": "N1", "manufacturer": "BOEING", "colour": "red"}], source="registry")
    assert (report.inserted, report.rejected) == (1, 0)
    assert rows_of(uow, "planes")[0]["tailnum"] == "N1"


def test_formats_read_dates_in_a_zone_and_decimal_commas(uow):
    header = ["When", "Temp (F)", "Station", "year", "month", "day", "hour"]
    report = run(uow, "weather", [], source="met", chunks=[Chunk([
        ["01/01/2013 05:00", "39,02", "EWR", "2013", "1", "1", "5"],
    ], header)])
    assert (report.inserted, report.rejected) == (1, 0), report.errors
    (row,) = rows_of(uow, "weather")
    assert row["time_hour"] == dt.datetime(2013, 1, 1, 10, 0, tzinfo=dt.UTC)  # 05:00 in New York
    assert row["temp"] == pytest.approx(39.02)


def test_a_request_override_wins_over_the_profile_for_one_batch(uow):
    header = ["When", "Temp (F)", "Station", "year", "month", "day", "hour"]
    report = run(uow, "weather", [], source="met", overrides={"formats": {"timezone": "UTC"}}, chunks=[Chunk([
        ["01/01/2013 05:00", "39,02", "EWR", "2013", "1", "1", "5"]], header)])
    assert report.inserted == 1
    assert rows_of(uow, "weather")[0]["time_hour"] == dt.datetime(2013, 1, 1, 5, 0, tzinfo=dt.UTC)


def test_constants_set_a_column_for_every_row(uow):
    report = run(uow, "planes", [{"tailnum": "N1"}, {"tailnum": "N2", "manufacturer": "EMBRAER"}],
                 overrides={"constants": {"manufacturer": "BOEING"}})
    assert report.inserted == 2
    assert {p["manufacturer"] for p in rows_of(uow, "planes")} == {"BOEING"}  # the constant wins


def test_unknown_columns_reject_the_row_by_default_and_freeze_fails_the_batch(uow):
    rejected = run(uow, "airlines", [{"carrier": "AA", "name": "American", "colour": "red"}])
    assert (rejected.inserted, rejected.rejected, rejected.errors[0]["code"]) == (0, 1, "unknown_column")
    with pytest.raises(BadRequest, match="unknown=freeze"):
        run(uow, "airlines", [{"carrier": "UA", "name": "United"}, {"carrier": "DL", "name": "D", "x": 1}],
            overrides={"contract": {"unknown": "freeze"}})
    with pytest.raises(BadRequest, match="unknown=freeze"):
        run(uow, "airlines", [], overrides={"contract": {"unknown": "freeze"}},
            chunks=[Chunk([["UA", "United", "x"]], ["carrier", "name", "colour"])])
    assert rows_of(uow, "airlines") == []
    failed = ingest.list_batches(uow, limit=1, offset=0).rows[0]
    assert failed["status"] == "failed"


def test_freeze_writes_nothing_when_the_unknown_column_turns_up_in_a_later_chunk(uow):
    """JSON rows show their keys one by one: a batch under freeze is one transaction, so the chunks
    written before the unknown column are undone with it (best_effort keeps its row rejections)."""
    chunks = [Chunk([{"carrier": "UA", "name": "United"}, {"carrier": "bad carrier", "name": "B"}]),
              Chunk([{"carrier": "DL", "name": "Delta", "colour": "red"}])]
    with pytest.raises(BadRequest, match="unknown=freeze"):
        run(uow, "airlines", [], chunks=chunks, overrides={"contract": {"unknown": "freeze"}})
    assert rows_of(uow, "airlines") == []
    failed = ingest.list_batches(uow, limit=1, offset=0).rows[0]
    assert (failed["status"], failed["inserted"], failed["rejected"]) == ("failed", 0, 0)
    assert failed["error"]["code"] == "PGRST204" and "colour" in failed["error"]["message"]
    assert rows_of(uow, "rejected_rows") == []


def test_invalid_values_are_discarded_where_the_column_is_nullable(uow):
    report = run(uow, "planes", [], overrides={"contract": {"invalid": "discard_value"}}, chunks=[Chunk([
        ["N1", "BOEING", "many"], ["N2", "NOBODY", "3"], ["N3", "BOEING", "-1"]],
        ["tailnum", "manufacturer", "seats"])])
    assert (report.inserted, report.rejected) == (2, 1)  # N2: the reference is not a value to discard
    assert [(w["row"], w["field"]) for w in report.warnings] == [(1, "seats"), (3, "seats")]
    assert {p["tailnum"]: p["seats"] for p in rows_of(uow, "planes")} == {"N1": None, "N3": None}
    json_report = run(uow, "airlines", [{"carrier": "aa", "name": "x"}],
                      overrides={"contract": {"invalid": "discard_value"}})
    assert json_report.rejected == 1  # carrier is not nullable: the row is rejected as before


def test_the_batch_records_its_profile_and_a_replay_reads_with_it(uow):
    first = run(uow, "planes", [{"Tail Number": "N9", "manufacturer": "AIRBUS", "Built": "2001"}], source="registry")
    assert first.rejected == 1
    batch = ingest.get_batch(uow, first.batch_id)
    assert batch["profile"] == PLANES_PROFILE and len(batch["profile_hash"]) == 64
    services.update_rows(uow, "sources", _code("registry"), {"profile": None})
    services.create_rows(uow, "manufacturers", [{"name": "AIRBUS"}])
    replayed = ingest.replay(uow, first.batch_id)
    assert (replayed.inserted, replayed.rejected) == (1, 0)
    assert rows_of(uow, "planes")[0]["year"] == 2001


def _code(code):
    from domain.query import Condition

    return Condition("code", "eq", code)


@pytest.mark.parametrize(("profile", "message"), [
    ({"colums": {}}, "unknown key 'colums'"),
    ({"formats": {"date": "%d/%Q/%Y"}}, "not a strftime pattern"),
    ({"formats": {"date": "dd/mm/yyyy"}}, "no strftime directive"),
    ({"formats": {"timezone": "Mars/Olympus"}}, "not a time zone"),
    ({"contract": {"unknown": "ignore"}}, "reject_row, discard, freeze"),
    ({"tables": {"planes": {"record_path": 3}}}, "profile.tables.planes.record_path"),
])
def test_a_bad_profile_is_refused_and_nothing_is_written(uow, profile, message):
    with pytest.raises(BadRequest, match=message):
        services.create_rows(uow, "sources", [{"code": "bad", "name": "Bad", "profile": profile}])
    with pytest.raises(BadRequest, match=message):
        services.update_rows(uow, "sources", _code("met"), {"profile": profile})
    assert {s["code"] for s in rows_of(uow, "sources")} == {"manual", "registry", "met"}


def test_a_bad_override_is_refused_before_a_batch_begins(uow):
    with pytest.raises(BadRequest, match="not a strftime pattern"):
        run(uow, "weather", [], overrides={"formats": {"date": "%Q"}})
    with pytest.raises(BadRequest, match="constants sets 'colour'"):
        run(uow, "planes", [], overrides={"constants": {"colour": "red"}})
    assert ingest.list_batches(uow, limit=5, offset=0).rows == []


def test_the_watermark_is_the_greatest_cursor_value_the_source_loaded(uow):
    assert ingest.watermark(uow, "met", "weather")["watermark"] is None
    header = ["When", "Temp (F)", "Station", "year", "month", "day", "hour"]
    run(uow, "weather", [], source="met", chunks=[Chunk([
        ["01/01/2013 05:00", "1", "EWR", "2013", "1", "1", "5"],
        ["01/02/2013 05:00", "2", "EWR", "2013", "1", "2", "5"],
        ["12/31/2012 05:00", "3", "EWR", "2012", "12", "31", "5"]], header)])
    mark = ingest.watermark(uow, "met", "weather")
    assert (mark["cursor"], mark["watermark"]) == ("time_hour", dt.datetime(2013, 1, 2, 10, 0, tzinfo=dt.UTC))
    with pytest.raises(BadRequest, match="names no cursor"):
        ingest.watermark(uow, "registry", "planes")
