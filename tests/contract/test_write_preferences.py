"""Prefer: max-affected and tx=rollback at the service layer, on both adapters: a write over the
limit is refused and undone; a dry run answers as the write would and leaves nothing behind."""

from __future__ import annotations

import pytest

from domain.errors import BadRequest
from domain.query import Condition
from service_layer import services
from tests.contract.test_reads import AIRLINES, page, seed_references


@pytest.fixture
def uow(uow_factory):
    seed_references(uow_factory)
    return uow_factory


def names(uow) -> list[str]:
    return [r["name"] for r in page(uow, "select=name&order=carrier", "airlines").rows]


def test_max_affected_refuses_and_rolls_back_a_write_over_the_limit(uow):
    everyone = Condition("carrier", "in", ("AA", "B6", "DL"))
    with pytest.raises(BadRequest) as caught:
        services.update_rows(uow(), "airlines", everyone, {"name": "x"}, max_affected=2)
    assert caught.value.code == "PGRST124" and caught.value.details == "The query affects 3 rows"
    with pytest.raises(BadRequest):
        services.delete_rows(uow(), "airlines", everyone, max_affected=0)
    assert names(uow) == [a["name"] for a in AIRLINES]
    assert len(services.update_rows(uow(), "airlines", everyone, {"name": "x"}, max_affected=3)) == 3
    assert names(uow) == ["x", "x", "x", AIRLINES[3]["name"]]


def test_a_dry_run_answers_as_the_write_would_and_leaves_nothing(uow):
    created = services.create_rows(uow(), "airlines", [{"carrier": "ZZ", "name": "Zed"}], dry_run=True)
    version = uow().catalog["airlines"].system.version  # `version`, or the name the catalog gives it
    assert [(r["carrier"], r[version]) for r in created] == [("ZZ", 1)]
    updated = services.update_rows(uow(), "airlines", Condition("carrier", "eq", "AA"), {"name": "y"}, dry_run=True)
    assert [r["name"] for r in updated] == ["y"]
    assert services.update_row(uow(), "airlines", "B6", {"name": "z"}, dry_run=True)[version] == 2
    assert len(services.delete_rows(uow(), "airlines", Condition("carrier", "eq", "DL"), dry_run=True)) == 1
    services.delete_row(uow(), "airlines", "UA", dry_run=True)
    assert names(uow) == [a["name"] for a in AIRLINES]
