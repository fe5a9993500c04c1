"""Nested writes on both adapters: to-one parents written first, to-many children after with their
reference filled in, all in one transaction; an error names the nested path and writes nothing."""

from __future__ import annotations

import pytest

from domain.errors import BadRequest, DuplicateKey, InvalidRows
from entrypoints.routes import _relation
from service_layer import nested
from tests.contract.test_reads import CATALOG, flight, flight_records, rows, seed_references


@pytest.fixture
def uow(uow_factory):
    seed_references(uow_factory)
    return uow_factory


def write(uow, table: str, raws: list, **options) -> list[dict]:
    return nested.create_nested(uow(), table, raws, _relation(CATALOG), max_rows=100, **options)


def test_a_to_one_parent_is_written_first_and_referenced(uow):
    written = write(uow, "planes", [{"tailnum": "N9", "seats": 9, "manufacturers": {"name": "NEWCO"}}])
    assert [(r["tailnum"], r["manufacturer"]) for r in written] == [("N9", "NEWCO")]
    assert rows(uow, "select=tailnum,manufacturers(name)&tailnum=eq.N9", "planes") == [
        {"tailnum": "N9", "manufacturers": {"name": "NEWCO"}}]


def test_to_many_children_get_the_parents_key_at_every_depth(uow):
    [record] = flight_records([flight(901, "QQ", "JFK", "ORD", 1.0)])
    del record["carrier"]
    written = write(uow, "airlines", [{"carrier": "QQ", "name": "Q Air", "flights": [
        {**record, "planes": {"tailnum": "N77", "manufacturers": {"name": "AIRBUS"}}}]}],
        resolution="ignore")
    assert [r["carrier"] for r in written] == ["QQ"]
    assert rows(uow, "select=carrier,flights(flight,tailnum)&carrier=eq.QQ", "airlines") == [
        {"carrier": "QQ", "flights": [{"flight": 901, "tailnum": "N77"}]}]


def test_an_error_names_the_nested_path_and_nothing_is_written(uow):
    with pytest.raises(InvalidRows) as caught:
        write(uow, "planes", [{"tailnum": "N9", "manufacturers": {"name": "NEWCO"}},
                              {"tailnum": "N8", "seats": -1, "manufacturers": {"name": 5}}])
    assert caught.value.message.startswith("At planes[1].manufacturers[0]:")
    assert caught.value.details[0]["field"] == "planes[1].manufacturers[0].name"
    with pytest.raises(DuplicateKey) as duplicate:
        write(uow, "planes", [{"tailnum": "N9", "manufacturers": {"name": "BOEING"}}])
    assert duplicate.value.message.startswith("At planes[0].manufacturers[0]:")
    with pytest.raises(BadRequest) as unknown:
        write(uow, "planes", [{"tailnum": "N9", "makers": {"name": "X"}}])
    assert unknown.value.code == "PGRST200" and "planes[0].makers" in unknown.value.message
    assert rows(uow, "select=name&order=name", "manufacturers") == [{"name": "AIRBUS"}, {"name": "BOEING"}]
    assert rows(uow, "select=tailnum&tailnum=in.(N8,N9)", "planes") == []
