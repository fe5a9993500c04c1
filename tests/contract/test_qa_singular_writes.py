"""QA round: a write asked for a singular representation (Accept: vnd.pgrst.object+json) that
touches other than one row is refused with PGRST116 and rolled back, as in PostgREST; it used
to answer 406 and keep the change. Same on both adapters."""

from __future__ import annotations

import pytest

from domain.errors import NotSingular
from domain.query import Condition, Query
from service_layer import services

AIRLINES = [{"carrier": "AA", "name": "American"}, {"carrier": "UA", "name": "United"}]


def names(uow_factory) -> dict[str, str]:
    with uow_factory() as uow:
        rows = services.list_rows(uow, "airlines", Query()).rows
    return {r["carrier"]: r["name"] for r in rows}


@pytest.fixture
def airlines(uow_factory):
    services.create_rows(uow_factory(), "airlines", AIRLINES)


def test_a_singular_update_of_two_rows_changes_nothing(uow_factory, airlines):
    with pytest.raises(NotSingular):
        services.update_rows(uow_factory(), "airlines", Condition("carrier", "in", ("AA", "UA")), {"name": "x"},
                             singular=True)
    assert names(uow_factory) == {"AA": "American", "UA": "United"}


def test_a_singular_delete_of_no_row_or_two_rows_deletes_nothing(uow_factory, airlines):
    for where in (Condition("carrier", "eq", "ZZ"), Condition("carrier", "in", ("AA", "UA"))):
        with pytest.raises(NotSingular):
            services.delete_rows(uow_factory(), "airlines", where, singular=True)
    assert names(uow_factory) == {"AA": "American", "UA": "United"}


def test_a_singular_insert_of_two_rows_inserts_nothing(uow_factory, airlines):
    with pytest.raises(NotSingular):
        services.create_rows(uow_factory(), "airlines", [{"carrier": "B6", "name": "JetBlue"},
                                                         {"carrier": "DL", "name": "Delta"}], singular=True)
    assert set(names(uow_factory)) == {"AA", "UA"}


def test_a_singular_write_of_one_row_is_written(uow_factory, airlines):
    rows = services.update_rows(uow_factory(), "airlines", Condition("carrier", "eq", "AA"), {"name": "A"},
                                singular=True)
    assert [r["name"] for r in rows] == ["A"]
    assert names(uow_factory)["AA"] == "A"
