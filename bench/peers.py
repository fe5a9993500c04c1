"""The apps depot's reads are compared with in `bench/compare.py`, served by the same uvicorn:

- `fastcrud_app`: FastCRUD (the `bench` extra) over SQLAlchemy's asyncio engine and asyncpg,
  on depot's own `flights` and `airlines` tables, as its documentation sets it up: `crud_router`
  with a filter on carrier, and a second router whose list joins airlines. Its list counts the
  matching rows on every call (its default answer carries `total_count`), as a user gets it.
- `bare_app`: FastAPI's floor, a plain `def` route returning fixed bytes.

Run one: BENCH_DATABASE_URL=postgresql://... uvicorn --factory bench.peers:fastcrud_app
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.responses import Response

FIXED = b'{"id":1,"carrier":"UA","flight":1545,"origin":"EWR","dest":"IAH"}'


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.get("/fixed")
    def fixed() -> Response:
        return Response(FIXED, media_type="application/json")

    return app


def _urls() -> tuple[str, str]:
    """The same database for the sync reflection and for asyncpg (a unix socket is ?host=/dir)."""
    url = os.environ["BENCH_DATABASE_URL"]
    rest = url.split("://", 1)[1]
    return "postgresql+psycopg2://" + rest, "postgresql+asyncpg://" + rest


def fastcrud_app() -> FastAPI:
    import pydantic
    import sqlalchemy as sa
    from fastcrud import FilterConfig, JoinConfig, crud_router
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
    from sqlalchemy.ext.automap import automap_base

    sync_url, async_url = _urls()
    Base = automap_base()
    reflector = sa.create_engine(sync_url)
    Base.prepare(autoload_with=reflector, reflection_options={"only": ["flights", "airlines"]})
    reflector.dispose()
    Flight, Airline = Base.classes.flights, Base.classes.airlines

    engine = create_async_engine(async_url, pool_size=10, max_overflow=10)
    sessions = async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)

    async def get_session():
        async with sessions() as session:
            yield session

    class FlightWrite(pydantic.BaseModel):  # crud_router requires schemas; the bench only reads
        carrier: str

    class AirlineName(pydantic.BaseModel):
        name: str

    app = FastAPI()
    common = dict(session=get_session, model=Flight, create_schema=FlightWrite, update_schema=FlightWrite,
                  filter_config=FilterConfig(carrier=None), included_methods=["read", "read_multi"])
    app.include_router(crud_router(path="/flights", tags=["flights"], **common))
    app.include_router(crud_router(
        path="/flights_with_airline", tags=["joined"],
        joins_config=[JoinConfig(model=Airline, join_on=Flight.carrier == Airline.carrier, join_prefix="airline_",
                                 schema_to_select=AirlineName, join_type="left")],
        **common,
    ))
    return app
