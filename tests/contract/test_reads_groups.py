"""Past PostgREST, on both adapters: having= on aggregates (with order by an aggregate), and
distinct= with keyset pages."""

from __future__ import annotations

import pytest

from domain.errors import BadRequest
from entrypoints.query_string import encode_cursor
from tests.contract.test_reads import CATALOG, page, parse_read, rows, seed


@pytest.fixture
def uow(uow_factory):
    seed(uow_factory)
    return uow_factory


def test_having_filters_groups_by_their_aggregates_and_orders_by_one(uow):
    query = "select=carrier,n:count(),delay:dep_delay.avg()&having=n.gt.2&order=delay.desc"
    assert rows(uow, query) == [{"carrier": "UA", "n": 3, "delay": 14.125}, {"carrier": "B6", "n": 3, "delay": -0.75}]
    query = "select=carrier,n:count(),worst:dep_delay.max()&having=n.gte.2&having=worst.lt.10&order=carrier"
    assert rows(uow, query) == [{"carrier": "AA", "n": 2, "worst": 5.5}, {"carrier": "B6", "n": 3, "worst": 5.5}]
    assert rows(uow, "select=carrier,delay:dep_delay.sum()&having=delay.is.null&order=carrier") == []
    # once cast, the aggregate compares as its new type
    assert rows(uow, "select=origin,n:count()::text&having=n.eq.2&order=origin") == [
        {"origin": "EWR", "n": "2"}, {"origin": "LGA", "n": "2"}]
    assert page(uow, "select=carrier,n:count()&having=n.gt.2", count="exact").total == 2


@pytest.mark.parametrize("query", [
    "select=carrier&having=n.gt.1",  # no aggregates
    "select=carrier,n:count()&having=m.gt.1",  # not an aggregate's key
    "select=carrier,n:count()&having=n.like.1",
    "select=carrier,n:count()&having=n.gt.x",
    "select=carrier,n:count()&having=n",
])
def test_bad_having_is_a_400(uow, query):
    with pytest.raises(BadRequest):
        page(uow, query)


def test_distinct_gives_each_combination_once_and_pages_by_keyset(uow):
    assert rows(uow, "distinct=origin&order=origin") == [{"origin": "EWR"}, {"origin": "JFK"}, {"origin": "LGA"}]
    assert rows(uow, "select=carrier,origin&distinct&order=origin.desc,carrier") == [
        {"carrier": "AA", "origin": "LGA"}, {"carrier": "B6", "origin": "LGA"}, {"carrier": "AA", "origin": "JFK"},
        {"carrier": "B6", "origin": "JFK"}, {"carrier": "UA", "origin": "JFK"}, {"carrier": "UA", "origin": "EWR"},
    ]
    first = page(uow, "select=origin,dest&distinct&order=dest,origin&limit=2", count="exact")
    assert first.total == 7 and first.rows == [{"origin": "JFK", "dest": "EWR"}, {"origin": "LGA", "dest": "JFK"}]
    seen = list(first.rows)
    last = first.last
    read = parse_read(CATALOG, CATALOG["flights"], [("select", "origin,dest"), ("distinct", ""),
                                                     ("order", "dest,origin"), ("limit", "2")], None, 100)
    while last is not None:  # each page's after= is the cursor its Link header would carry
        following = page(uow, f"select=origin,dest&distinct&order=dest,origin&limit=2"
                              f"&after={encode_cursor(read.keyset_order(CATALOG['flights']), last)}")
        seen += following.rows
        last = following.last
    assert len(seen) == 7 and len({(r["origin"], r["dest"]) for r in seen}) == 7


@pytest.mark.parametrize("query", [
    "distinct",  # no select
    "select=carrier&distinct=origin",
    "select=carrier,n:count()&distinct",
    "select=carrier,airlines(name)&distinct",
    "select=carrier&distinct&order=origin",
    "distinct=nope",
])
def test_bad_distinct_is_a_400(uow, query):
    with pytest.raises(BadRequest):
        page(uow, query)
