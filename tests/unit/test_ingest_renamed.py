"""A renamed column still takes its old name on ingest: what was sent, profiled or rejected before the
rename lands in the column it became, instead of being refused as unknown."""

from __future__ import annotations

from typing import Annotated

from adapters.memory.repository import InMemoryUnitOfWork, MemoryStore
from domain.query import Query
from domain.schema import Catalog, Renamed
from service_layer import services
from service_layer.ingest import Chunk
from tests.ingesting import run

CATALOG = Catalog()


@CATALOG.table("jobs", group="primary", natural_key=("ref",))
class Job:
    ref: str
    job_title: Annotated[str, Renamed("title")]
    note: str | None = None


def uow():
    return InMemoryUnitOfWork(MemoryStore(CATALOG))


def titles(unit) -> dict[str, str]:
    return {r["ref"]: r["job_title"] for r in services.list_rows(unit, "jobs", Query()).rows}


def test_the_old_name_lands_in_the_new_column_with_or_without_a_profile():
    unit = uow()
    assert run(unit, "jobs", [{"ref": "1", "title": "Engineer"}]).inserted == 1
    report = run(unit, "jobs", [], chunks=[Chunk([["2", "Analyst"]], ["ref", "title"])])
    assert (report.inserted, report.rejected) == (1, 0)
    profiled = run(unit, "jobs", [{"Ref": "3", "Title": "Clerk"}], overrides={"match": "case_insensitive"})
    assert (profiled.inserted, profiled.rejected) == (1, 0)
    assert titles(unit) == {"1": "Engineer", "2": "Analyst", "3": "Clerk"}


def test_a_profile_written_before_the_rename_keeps_working():
    unit = uow()
    profile = {"columns": {"Name": "title"}, "constants": {"title": "fixed"}, "formats": {"columns": {"title": {}}}}
    report = run(unit, "jobs", [{"ref": "1", "Name": "ignored: the constant wins"}], overrides=profile)
    assert (report.inserted, report.rejected) == (1, 0)
    assert titles(unit) == {"1": "fixed"}


def test_the_new_name_wins_over_a_column_that_took_the_old_one():
    catalog = Catalog()

    @catalog.table("jobs", group="primary", natural_key=("ref",))
    class Job:
        ref: str
        job_title: Annotated[str, Renamed("title")]
        title: str | None = None  # a new column took the freed name: `title` is its, not job_title's

    unit = InMemoryUnitOfWork(MemoryStore(catalog))
    run(unit, "jobs", [{"ref": "1", "job_title": "Engineer", "title": "Dr"}])
    row = services.list_rows(unit, "jobs", Query()).rows[0]
    assert (row["job_title"], row["title"]) == ("Engineer", "Dr")
