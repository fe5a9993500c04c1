"""Retry a use case whose transaction lost a race: a deadlock (40P01) or a serialization failure (40001).

PostgreSQL rolls the whole transaction back in both cases, so running the use case again is safe
for any use case that is one unit of work: nothing of the failed attempt persists. After the last
attempt the error goes to the caller as it is (a 409 with the SQLSTATE and a hint to retry).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from domain.errors import Conflict

P = ParamSpec("P")
T = TypeVar("T")

TRANSIENT = frozenset({"40001", "40P01"})
ATTEMPTS = 4
log = logging.getLogger("depot.retry")


def is_transient(error: BaseException) -> bool:
    return isinstance(error, Conflict) and error.code in TRANSIENT


def retry_transient(
    function: Callable[P, T] | None = None, *, attempts: int = ATTEMPTS, sleep: Callable[[float], None] = time.sleep
):
    """Decorate a use case: on a transient conflict, wait a little (jittered, growing) and run it again."""

    def decorate(use_case: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(use_case)
        def attempt(*args: P.args, **kwargs: P.kwargs) -> T:
            for number in range(1, attempts + 1):
                try:
                    return use_case(*args, **kwargs)
                except Conflict as error:
                    if not is_transient(error) or number == attempts:
                        raise
                    log.info("%s lost a race (%s); attempt %d of %d", use_case.__name__, error.code,
                             number + 1, attempts)
                    sleep(random.uniform(0.005, 0.02) * 2**number)
            raise AssertionError("unreachable")  # pragma: no cover

        return attempt

    return decorate(function) if function is not None else decorate
