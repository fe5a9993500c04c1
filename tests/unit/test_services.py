"""The table use cases on the in-memory fakes."""

from __future__ import annotations

import datetime as dt

import pytest

from domain.errors import BadRequest, Conflict, DuplicateKey, InvalidRows, NotFound, PreconditionFailed, UnknownTable
from domain.query import Condition, Query
from service_layer import services

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def clock(at: dt.datetime):
    return lambda: at


def carriers(memory_uow) -> list[tuple[str, str, int]]:
    page = services.list_rows(memory_uow(), "airlines", Query())
    return [(r["carrier"], r["name"], r["version"]) for r in page.rows]


@pytest.fixture
def airlines(memory_uow):
    services.create_rows(memory_uow(), "airlines", [{"carrier": "AA", "name": "American"},
                                                    {"carrier": "UA", "name": "United"}], clock=clock(T0))


def test_create_sets_the_system_columns_not_the_caller(memory_uow, airlines):
    row = services.get_row(memory_uow(), "airlines", "AA")
    assert (row["source"], row["version"], row["created_at"], row["updated_at"]) == ("manual", 1, T0, T0)


def test_create_is_atomic_when_one_row_is_invalid(memory_uow, airlines):
    with pytest.raises(InvalidRows) as invalid:
        services.create_rows(memory_uow(), "airlines", [{"carrier": "DL", "name": "Delta"}, {"carrier": "??"}])
    assert {d["row"] for d in invalid.value.details} == {2}
    assert [c for c, _, _ in carriers(memory_uow)] == ["AA", "UA"]


def test_create_is_atomic_when_one_row_conflicts(memory_uow, airlines):
    with pytest.raises(DuplicateKey):
        services.create_rows(memory_uow(), "airlines", [{"carrier": "DL", "name": "Delta"},
                                                        {"carrier": "AA", "name": "dup"}])
    assert [c for c, _, _ in carriers(memory_uow)] == ["AA", "UA"]


def test_merge_duplicates_upserts_and_the_last_duplicate_in_a_request_wins(memory_uow, airlines):
    services.create_rows(memory_uow(), "airlines", [{"carrier": "AA", "name": "first"},
                                                    {"carrier": "AA", "name": "American Airlines"},
                                                    {"carrier": "DL", "name": "Delta"}],
                         resolution="merge", clock=clock(T1))
    assert carriers(memory_uow) == [("AA", "American Airlines", 2), ("DL", "Delta", 1), ("UA", "United", 1)]


def test_ignore_duplicates_keeps_the_stored_row(memory_uow, airlines):
    services.create_rows(memory_uow(), "airlines", [{"carrier": "AA", "name": "other"}], resolution="ignore")
    assert carriers(memory_uow)[0] == ("AA", "American", 1)


def test_on_conflict_must_name_a_unique_key(memory_uow, airlines):
    with pytest.raises(BadRequest, match="not a unique key"):
        services.create_rows(memory_uow(), "airlines", [{"carrier": "AA", "name": "x"}],
                             resolution="merge", on_conflict=["name"])


def test_update_row_with_a_stale_version_changes_nothing(memory_uow, airlines):
    services.update_row(memory_uow(), "airlines", "AA", {"name": "AAL"}, expected_version=1)
    with pytest.raises(PreconditionFailed) as stale:
        services.update_row(memory_uow(), "airlines", "AA", {"name": "lost update"}, expected_version=1)
    assert stale.value.details == {"version": 2}
    assert carriers(memory_uow)[0] == ("AA", "AAL", 2)


def test_update_row_of_a_missing_key_is_not_found(memory_uow, airlines):
    with pytest.raises(NotFound):
        services.update_row(memory_uow(), "airlines", "ZZ", {"name": "x"})


def test_update_rows_validates_the_changes(memory_uow, airlines):
    with pytest.raises(InvalidRows):
        services.update_rows(memory_uow(), "airlines", Condition("carrier", "eq", "AA"), {"carrier": "lower"})
    with pytest.raises(InvalidRows):
        services.update_rows(memory_uow(), "airlines", Condition("carrier", "eq", "AA"), {"version": 7})


def test_delete_row_honours_if_match(memory_uow, airlines):
    with pytest.raises(PreconditionFailed):
        services.delete_row(memory_uow(), "airlines", "AA", expected_version=5)
    services.delete_row(memory_uow(), "airlines", "AA", expected_version=1)
    assert [c for c, _, _ in carriers(memory_uow)] == ["UA"]


def test_the_manual_source_cannot_be_deleted(memory_uow):
    with pytest.raises(Conflict):
        services.delete_row(memory_uow(), "sources", "manual")
    assert services.get_row(memory_uow(), "sources", "manual")["priority"] == 0


def test_bookkeeping_tables_are_read_only_through_the_table_api(memory_uow):
    with pytest.raises(BadRequest, match="read-only"):
        services.create_rows(memory_uow(), "ingest_batches", [{"table": "x"}])
    assert services.list_rows(memory_uow(), "ingest_batches", Query()).rows == []


def test_unknown_tables_are_named(memory_uow):
    with pytest.raises(UnknownTable, match="'planets'"):
        services.list_rows(memory_uow(), "planets", Query())


def test_composite_keys_have_no_single_row_address(memory_uow):
    with pytest.raises(BadRequest, match="composite key"):
        services.get_row(memory_uow(), "routes", "AA")


def test_count_rows_counts_every_table(memory_uow, airlines, catalog):
    counts = services.count_rows(memory_uow())
    assert counts["airlines"] == 2 and counts["sources"] == 1 and list(counts) == list(catalog.names)
