"""The FastAPI dependencies the generated routes share: the unit of work and the settings of the
app's own container (`app.state.container`, set by create_app).

They are `async def`, unlike STYLE.md's usual `Depends(Provide[...])` shape, on purpose: FastAPI
runs every plain `def` dependency, and the `Provide` marker itself (FastAPI calls it), in the
thread pool, and those hops were two per dependency and four per read, more than the query cost.
They read the container from the request rather than through dependency-injector's wiring:
wiring is per process, so every app would reach the container wired last (two apps in one process,
as tests build them, would read each other's store). `container.uow.override(...)` still reaches
every route of its app.
"""

from starlette.requests import Request

from domain.ports import AbstractUnitOfWork
from entrypoints.settings import Settings


async def get_uow(request: Request) -> AbstractUnitOfWork:
    return request.app.state.container.uow()


async def get_settings(request: Request) -> Settings:
    return request.app.state.container.settings()
