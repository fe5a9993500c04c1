"""disposition=append over HTTP on both adapters: on an instance table declared unique_natural_key=False
every row is a new one, repeats and all; the dispositions that find rows by natural key are refused
there, and append is refused (400, nothing written) on the tables whose rows are keyed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import pytest
from fastapi.testclient import TestClient

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, References
from tests.serving import STORES, served_on
from tests.system_columns import by_role

ERROR_SHAPE = {"code", "message", "details", "hint"}


def bird_catalog(prefix: str | None) -> Catalog:
    catalog = CATALOG.extend()

    @catalog.table("stations", group="primary", natural_key=("code",), system_columns=prefix)
    class Station:
        code: str

    @catalog.table("sightings", group="instances", natural_key=("station", "species"), surrogate_id=True,
                   unique_natural_key=False, system_columns=prefix)
    class Sighting:
        """A scraper's repeated observations: the same station and species, seen again and again."""

        station: Annotated[str, References("stations")]
        species: str
        seen: int

    @catalog.table("censuses", group="instances", natural_key=("station", "year"), surrogate_id=True,
                   system_columns=prefix)
    class Census:
        station: Annotated[str, References("stations")]
        year: int
        birds: int

    return catalog


@pytest.fixture(params=STORES)
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    with served_on(request, bird_catalog) as test_client:
        assert test_client.post("/api/stations", json=[{"code": "n1"}, {"code": "s2"}]).status_code == 201
        yield test_client


def sightings(client: TestClient, **params) -> list[dict]:
    answer = client.get("/api/sightings", params={"order": "id", **params})
    assert answer.status_code == 200, answer.text
    return [by_role(client.spec["sightings"], r) for r in answer.json()]  # type: ignore[attr-defined]


def post(client: TestClient, table: str, body: list[dict], **params):
    return client.post(f"/ingest/{table}", json=body, params={"disposition": "append", **params})


ROWS = [{"station": "n1", "species": "wren", "seen": 2}, {"station": "n1", "species": "wren", "seen": 2},
        {"station": "s2", "species": "kite", "seen": 1}]


def test_append_inserts_every_row_as_new_repeats_and_all(client: TestClient):
    first = post(client, "sightings", ROWS)
    assert first.status_code == 200, first.text
    report = first.json()
    assert (report["inserted"], report["updated"], report["unchanged"], report["disposition"]) == (3, 0, 0, "append")
    again = post(client, "sightings", ROWS[:1]).json()
    assert again["inserted"] == 1
    stored = sightings(client)
    assert [(r["id"], r["station"], r["species"], r["batch_id"]) for r in stored] == [
        (1, "n1", "wren", report["batch_id"]), (2, "n1", "wren", report["batch_id"]),
        (3, "s2", "kite", report["batch_id"]), (4, "n1", "wren", again["batch_id"])]
    assert all(r["version"] == 1 for r in stored)

    # every row has its id to be read, changed and deleted by; filters delete many at once
    assert client.get("/api/sightings/2").json()["seen"] == 2
    assert client.patch("/api/sightings/2", json={"seen": 5}).status_code == 200
    assert client.delete("/api/sightings", params={"species": "eq.kite"}).status_code == 204
    assert [(r["id"], r["seen"]) for r in sightings(client)] == [(1, 2), (2, 5), (4, 2)]
    history = client.get("/api/sightings/2/history").json()
    assert [h["operation"] for h in history] == ["update", "insert"]


def test_a_batch_that_names_no_disposition_takes_the_tables_own(client: TestClient):
    """A log appends and every other table upserts, without the client saying so each time."""
    report = client.post("/ingest/sightings", json=ROWS).json()
    assert (report["disposition"], report["inserted"]) == ("append", 3)
    census = [{"station": "n1", "year": 2026, "birds": 3}]
    assert client.post("/ingest/censuses", json=census).json()["disposition"] == "upsert"
    batch = client.get(f"/ingest/batches/{report['batch_id']}").json()
    assert batch["disposition"] == "append"
    replayed = client.post(f"/ingest/batches/{report['batch_id']}/replay")
    assert replayed.status_code == 200 and replayed.json()["disposition"] == "append"


def test_pages_of_a_repeated_natural_key_end_with_the_id(client: TestClient):
    post(client, "sightings", ROWS * 2)
    seen, url = [], "/api/sightings?order=station,species&limit=2"
    while url:
        answer = client.get(url)
        seen += [r["id"] for r in answer.json()]
        link = answer.headers.get("link")
        url = link[link.index("<") + 1:link.index(">")] if link else None
    assert sorted(seen) == [1, 2, 3, 4, 5, 6]  # the cursor ends with the id: no twin skipped nor repeated


def test_append_rejects_invalid_rows_and_atomic_writes_none(client: TestClient):
    bad = [*ROWS, {"station": "zz", "species": "owl", "seen": 1}, {"station": "n1", "species": "owl", "seen": "x"}]
    report = post(client, "sightings", bad).json()
    assert (report["inserted"], report["rejected"]) == (3, 2)
    assert [e["row"] for e in report["errors"]] == [4, 5]
    atomic = post(client, "sightings", bad, mode="atomic")
    assert atomic.status_code == 422 and set(atomic.json()) == ERROR_SHAPE
    assert len(sightings(client)) == 3


def test_append_batch_can_be_reverted(client: TestClient):
    kept = post(client, "sightings", ROWS[:1]).json()
    report = post(client, "sightings", ROWS).json()
    reverted = client.post(f"/ingest/batches/{report['batch_id']}/revert")
    assert reverted.status_code == 200, reverted.text
    assert [r["batch_id"] for r in sightings(client)] == [kept["batch_id"]]


@pytest.mark.parametrize(("table", "disposition", "said"), [
    ("censuses", "append", "natural key (station, year) is unique"),
    ("stations", "append", "stations has no surrogate id"),
    ("sightings", "upsert", "may repeat"),
    ("sightings", "insert_only", "may repeat"),
    ("sightings", "delete", "may repeat"),
])
def test_a_disposition_the_table_cannot_take_is_a_400_and_writes_nothing(client: TestClient, table, disposition,
                                                                         said):
    body = [{"station": "n1", "species": "wren", "seen": 1, "year": 2026, "birds": 3, "code": "n9"}]
    answer = post(client, table, body, disposition=disposition)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == ERROR_SHAPE and said in answer.json()["message"]
    assert client.get("/ingest/batches").json() == []
    assert client.get(f"/api/{table}", params={"select": "n:count()"}).json()[0]["n"] == (
        2 if table == "stations" else 0)


def test_replace_partition_is_refused_on_a_repeatable_key(client: TestClient):
    answer = post(client, "sightings", ROWS, disposition="replace_partition", partition="station")
    assert answer.status_code == 400 and "may repeat" in answer.json()["message"]


def test_the_table_api_inserts_repeats_and_refuses_to_merge_on_them(client: TestClient):
    for _ in range(2):
        assert client.post("/api/sightings", json=ROWS[0]).status_code == 201
    merged = client.post("/api/sightings", json=ROWS[0], headers={"Prefer": "resolution=merge-duplicates"})
    assert merged.status_code == 400 and set(merged.json()) == ERROR_SHAPE
    assert "may repeat" in merged.json()["message"]
    assert len(sightings(client)) == 2
