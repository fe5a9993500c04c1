"""Batch requests: several reads and writes in one transaction, all committed or none.

Each operation is an ordinary use case (services, reads) given a `SharedUnitOfWork`: the use case
opens `with uow:` and calls `commit()` as always, and both are left to the batch, which opens the
one real transaction around every operation and commits it after the last."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from domain.errors import DepotError
from domain.ports import AbstractRepository, AbstractUnitOfWork


class SharedUnitOfWork(AbstractUnitOfWork):
    """One transaction lent to many use cases: entering, leaving, reading() and commit() do
    nothing; the batch that owns the real unit of work begins, commits or rolls it back."""

    def __init__(self, uow: AbstractUnitOfWork):
        self.uow = uow
        self.catalog = uow.catalog
        self.kind = uow.kind

    def __enter__(self) -> SharedUnitOfWork:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass  # a failed operation's exception reaches the batch, which rolls everything back

    def reading(self) -> SharedUnitOfWork:
        return self  # inside the transaction, so a read sees the batch's own writes

    def repository(self, table: str) -> AbstractRepository:
        return self.uow.repository(table)

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


class OperationFailed(Exception):
    """The operation at `index` failed, so nothing of the batch was written."""

    def __init__(self, index: int, error: DepotError):
        super().__init__(error.message)
        self.index = index
        self.error = error


def run_batch(uow: AbstractUnitOfWork, operations: Sequence[Callable[[AbstractUnitOfWork], Any]]) -> list[Any]:
    """Every operation in order, in one transaction; their results in the same order. The first
    that fails rolls the whole batch back (OperationFailed says which one and why)."""
    shared = SharedUnitOfWork(uow)
    results = []
    with uow:
        for index, operation in enumerate(operations):
            try:
                results.append(operation(shared))
            except DepotError as error:
                raise OperationFailed(index, error) from error
        uow.commit()
    return results
