"""The FastAPI dependencies the generated routes share. They are module-level functions so that
dependency-injector can wire them (it cannot wire the per-table closures)."""

from typing import Annotated

from dependency_injector.wiring import Provide, inject
from fastapi import Depends

from domain.ports import AbstractUnitOfWork
from entrypoints.container import Container
from entrypoints.settings import Settings


@inject
def get_uow(uow: Annotated[AbstractUnitOfWork, Depends(Provide[Container.uow])]) -> AbstractUnitOfWork:
    return uow


@inject
def get_settings(settings: Annotated[Settings, Depends(Provide[Container.settings])]) -> Settings:
    return settings
