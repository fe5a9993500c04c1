"""Transient conflicts (deadlock, serialization failure) are retried; other errors are not."""

from __future__ import annotations

import pytest

from domain.errors import Conflict, DuplicateKey
from domain.query import Query
from service_layer import services
from service_layer.retry import retry_transient


def flaky(failures: list[Exception]):
    calls = []

    @retry_transient(sleep=lambda seconds: None)
    def use_case(value):
        calls.append(value)
        if failures:
            raise failures.pop(0)
        return value * 2

    return use_case, calls


@pytest.mark.parametrize("code", ["40P01", "40001"])
def test_a_deadlock_or_serialization_failure_is_retried(code):
    use_case, calls = flaky([Conflict("deadlock detected", code=code)] * 2)
    assert use_case(21) == 42
    assert calls == [21, 21, 21]


def test_retries_are_bounded_and_the_last_error_goes_out():
    use_case, calls = flaky([Conflict("deadlock detected", code="40P01")] * 10)
    with pytest.raises(Conflict) as error:
        use_case(1)
    assert error.value.code == "40P01"
    assert len(calls) == 4


def test_a_real_conflict_is_not_retried():
    use_case, calls = flaky([DuplicateKey("duplicate key")])
    with pytest.raises(DuplicateKey):
        use_case(1)
    assert calls == [1]


def test_the_write_use_cases_retry():
    for use_case in (services.create_rows, services.update_rows, services.update_row,
                     services.delete_rows, services.delete_row):
        assert hasattr(use_case, "__wrapped__"), use_case


def test_create_rows_retries_the_whole_unit_of_work(memory_uow):
    """A deadlock in the first attempt's commit: the second attempt writes the rows once."""
    attempts = []

    def uow():
        unit = memory_uow()
        commit = unit.commit

        def failing_commit():
            attempts.append(1)
            if len(attempts) == 1:
                raise Conflict("deadlock detected", code="40P01")
            commit()

        unit.commit = failing_commit
        return unit

    shared = uow()
    rows = services.create_rows(shared, "airlines", [{"carrier": "DL", "name": "Delta"}], resolution="merge")
    assert [r["carrier"] for r in rows] == ["DL"]
    assert len(attempts) == 2
    page = services.list_rows(memory_uow(), "airlines", Query())
    assert [r["carrier"] for r in page.rows] == ["DL"]


def test_upserts_reach_the_store_one_per_key_in_arrival_order(memory_uow):
    """Rows reach the repository one per conflict key, the last one winning in the place its key came
    first, so that new ids are drawn in arrival order; the PostgreSQL repository writes them in key
    order, so that concurrent upserts lock in one order (tests/e2e/test_concurrency.py)."""
    seen = []
    unit = memory_uow()
    repository = unit.repository

    def spying(name):
        repo = repository(name)
        upsert = repo.upsert

        def recording(rows, conflict, **kwargs):
            seen.append([(r["carrier"], r["name"]) for r in rows])
            return upsert(rows, conflict, **kwargs)

        repo.upsert = recording
        return repo

    unit.repository = spying
    raws = [{"carrier": c, "name": n} for c, n in [("UA", "1"), ("AA", "2"), ("DL", "3"), ("AA", "4")]]
    services.create_rows(unit, "airlines", raws, resolution="merge")
    assert seen == [[("UA", "1"), ("AA", "4"), ("DL", "3")]]
