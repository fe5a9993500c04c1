"""Unit tests run on the in-memory adapter only: no database, no network."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from entrypoints.app import create_app
from entrypoints.container import Container
from entrypoints.settings import Settings


def memory_container(**overrides) -> Container:
    container = Container()
    container.settings.override(Settings(storage="memory", **overrides))
    return container


@pytest.fixture
def container() -> Container:
    return memory_container()


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    with TestClient(create_app(container)) as test_client:
        yield test_client
