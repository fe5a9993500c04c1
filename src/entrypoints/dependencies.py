"""The FastAPI dependencies the generated routes share. They are module-level functions so that
dependency-injector can wire them (it cannot wire the per-table closures).

They are `async def` and take no `Depends(Provide[...])` parameter, unlike STYLE.md's usual shape,
on purpose: FastAPI runs every plain `def` dependency, and the `Provide` marker itself (FastAPI
calls it), in the thread pool, and those hops were two per dependency and four per read, more
than the query cost. The injected functions below are still wired by the container, so
`container.uow.override(...)` reaches every route.
"""

from dependency_injector.wiring import Provide, inject

from domain.ports import AbstractUnitOfWork
from entrypoints.container import Container
from entrypoints.settings import Settings


@inject
def _uow(uow: AbstractUnitOfWork = Provide[Container.uow]) -> AbstractUnitOfWork:
    return uow


@inject
def _settings(settings: Settings = Provide[Container.settings]) -> Settings:
    return settings


async def get_uow() -> AbstractUnitOfWork:
    return _uow()


async def get_settings() -> Settings:
    return _settings()
