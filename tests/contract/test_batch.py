"""service_layer.batch on both adapters: use cases share one transaction; a failure undoes all."""

from __future__ import annotations

import pytest

from domain.errors import DuplicateKey
from domain.query import Condition, Read
from service_layer import batch, reads, services
from tests.contract.test_reads import AIRLINES, seed_references


@pytest.fixture
def uow(uow_factory):
    seed_references(uow_factory)
    return uow_factory


def carriers(uow) -> list[str]:
    return [r["carrier"] for r in reads.read_page(uow(), "airlines", Read()).rows]


def test_operations_share_one_transaction_and_see_each_others_writes(uow):
    answers = batch.run_batch(uow(), [
        lambda u: services.create_rows(u, "airlines", [{"carrier": "ZZ", "name": "Zed"}]),
        lambda u: services.update_rows(u, "airlines", Condition("carrier", "eq", "ZZ"), {"name": "Zee"}),
        lambda u: reads.read_page(u, "airlines", Read()).rows,
    ])
    assert [r["name"] for r in answers[1]] == ["Zee"]
    assert "ZZ" in [r["carrier"] for r in answers[2]]
    assert "ZZ" in carriers(uow)


def test_a_failing_operation_rolls_every_one_back(uow):
    with pytest.raises(batch.OperationFailed) as caught:
        batch.run_batch(uow(), [
            lambda u: services.create_rows(u, "airlines", [{"carrier": "ZZ", "name": "Zed"}]),
            lambda u: services.delete_rows(u, "airlines", Condition("carrier", "eq", "DL")),
            lambda u: services.create_rows(u, "airlines", [{"carrier": "AA", "name": "again"}]),
        ])
    assert caught.value.index == 2 and isinstance(caught.value.error, DuplicateKey)
    assert sorted(carriers(uow)) == sorted(a["carrier"] for a in AIRLINES)
