"""The same load gives the same rows the same surrogate ids on both adapters: ids follow arrival order,
within a chunk and across chunks, though PostgreSQL inserts each chunk in natural-key order (issue 16)."""

from __future__ import annotations

import random
import re
from typing import Annotated

import pytest
from fastapi.testclient import TestClient

from depot.examples.flights.catalog import CATALOG
from domain.schema import Catalog, References
from entrypoints import ingest_routes
from tests.serving import served

CHUNK_ROWS = 5  # so a file of a few dozen rows crosses several chunks


def readings_catalog() -> Catalog:
    catalog = CATALOG.extend()

    @catalog.table("readings", group="instances", natural_key=("station", "seq"), surrogate_id=True)
    class Reading:
        """A test's observations: the key order (station, seq) is not the order they arrive in."""

        station: str
        seq: int
        level: int | None = None
        maker: Annotated[str | None, References("manufacturers")] = None

    return catalog


def csv(rows: list[tuple[str, int, object]]) -> bytes:
    lines = ["station,seq,level", *(f"{s},{n},{'' if level is None else level}" for s, n, level in rows)]
    return ("\n".join(lines) + "\n").encode()


def ingest(client: TestClient, body: bytes, **params: str) -> dict:
    response = client.post("/ingest/readings", params=params, content=body, headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    return response.json()


def get(client: TestClient, query: str) -> list[dict]:
    response = client.get("/api/readings?" + query)
    assert response.status_code in (200, 206), response.text
    return response.json()


def keyset_pages(client: TestClient, query: str) -> list[list[dict]]:
    """Every page, following the Link header's after= cursor to the end."""
    pages, url = [], "/api/readings?" + query
    while url:
        response = client.get(url)
        assert response.status_code in (200, 206), response.text
        pages.append(response.json())
        link = re.match(r"<([^>]*)>; rel=\"next\"", response.headers.get("link", ""))
        url = link.group(1) if link else None
    return pages


RNG = random.Random(16)
FIRST = [(station, seq, seq % 3 if seq != 4 else None) for station in "NSEW" for seq in range(1, 7)]
RNG.shuffle(FIRST)  # key order and file order now differ, within each chunk and across them
INVALID = ("X", "not-a-number", 1)
# The key of FIRST[5] again, three rows later in the same chunk: the last row counts, where the key came first.
DUPLICATED = (FIRST[5][0], FIRST[5][1], 2)
FILE_ONE = [*FIRST[:6], INVALID, *FIRST[6:8], DUPLICATED, *FIRST[8:]]
SECOND = [(s, n, 9) for s, n, _ in FIRST[::5]]  # stored keys with a new level: updated, they keep their ids
SECOND += [(station, seq, seq % 2) for station in "ZYX" for seq in (3, 1, 2)]  # new keys
RNG.shuffle(SECOND)

# Read after both loads: the default order, offset pages, orders whose ties fall back to the id...
# (all but the timestamps, which differ by when each adapter ran)
ROW = "select=id,station,seq,level,version,batch_id"
PAGES = [ROW, f"{ROW}&order=id&limit=7&offset=14", f"{ROW}&order=level.desc.nullslast&limit=6&offset=6",
         "select=id&order=level,station.desc&limit=10"]
# ...and keyset pages, whose cursor carries the id that breaks ties: the same id must name the same row
KEYSETS = [f"{ROW}&order=level.desc.nullslast&limit=4", "select=id,level&order=level.nullsfirst&limit=5",
           "select=station,seq&order=station&limit=3"]


def answers(storage: str, request: pytest.FixtureRequest, on_conflict: str) -> dict[str, object]:
    """Both files loaded on one adapter, then what each read answers there. (One app at a time: the
    dependency wiring is per process.)"""
    with served(readings_catalog(), storage, request) as client:
        first = ingest(client, csv(FILE_ONE))
        assert (first["inserted"], first["superseded"], first["rejected"]) == (24, 1, 1)
        second = ingest(client, csv(SECOND), on_conflict=on_conflict)
        assert second["inserted"] == 9
        found: dict[str, object] = {"ids": get(client, "select=id,station,seq&order=id")}
        found |= {query: get(client, query) for query in PAGES}
        found |= {query: keyset_pages(client, query) for query in KEYSETS}
        return found


@pytest.mark.parametrize("on_conflict", ["update", "ignore", "error"])
def test_ids_follow_arrival_order_alike_on_both_adapters(request, monkeypatch, on_conflict):
    monkeypatch.setattr(ingest_routes, "CHUNK_ROWS", CHUNK_ROWS)
    memory, postgres = answers("memory", request, on_conflict), answers("postgres", request, on_conflict)
    # the first new row of each file gets the smallest new id; a stored key draws none, so leaves no gap
    arrival = list(dict.fromkeys((s, n) for s, n, _ in FIRST))
    arrival += [(s, n) for s, n, _ in SECOND if (s, n) not in arrival]
    assert memory["ids"] == [{"id": i, "station": s, "seq": n} for i, (s, n) in enumerate(arrival, start=1)]
    assert all(len(memory[query]) > 3 for query in KEYSETS)  # several pages each
    for name in memory:
        assert postgres[name] == memory[name], name


@pytest.mark.parametrize("storage", ["memory", "postgres"])
def test_upserts_through_the_table_api_draw_ids_in_arrival_order_too(request, storage):
    def post(rows: list[tuple[str, int, int]], resolution: str | None = None) -> list[dict]:
        prefer = "return=representation" + (f",resolution={resolution}" if resolution else "")
        body = [{"station": s, "seq": n, "level": level} for s, n, level in rows]
        response = client.post("/api/readings", json=body, headers={"Prefer": prefer})
        assert response.status_code == 201, response.text
        return [(r["id"], r["station"], r["seq"], r["level"]) for r in response.json()]

    with served(readings_catalog(), storage, request) as client:
        assert post([("N", 2, 0), ("N", 1, 0)]) == [(1, "N", 2, 0), (2, "N", 1, 0)]
        # a stored key keeps its id and draws none; a key sent twice counts once, where it came first
        merged = post([("S", 1, 0), ("N", 1, 7), ("A", 5, 0), ("S", 1, 3)], "merge-duplicates")
        assert merged == [(3, "S", 1, 3), (2, "N", 1, 7), (4, "A", 5, 0)]
        assert post([("B", 1, 0), ("N", 2, 9)], "ignore-duplicates") == [(5, "B", 1, 0)]
        stored = client.get("/api/readings", params={"select": "id,station,seq", "order": "id"}).json()
        assert [(r["station"], r["seq"]) for r in stored] == [("N", 2), ("N", 1), ("S", 1), ("A", 5), ("B", 1)]


@pytest.mark.parametrize("storage", ["memory", "postgres"])
def test_a_replay_draws_ids_in_the_order_of_its_rejections(request, storage):
    with served(readings_catalog(), storage, request) as client:
        body = b"station,seq,maker\nC,3,LATER\nA,1,\nB,2,LATER\nA,0,\n"  # C and B wait for their maker
        first = ingest(client, body)
        assert (first["inserted"], first["rejected"]) == (2, 2)
        assert client.post("/api/manufacturers", json={"name": "LATER"}).status_code == 201
        assert ingest(client, b"station,seq\nZ,9\n")["inserted"] == 1
        replayed = client.post(f"/ingest/batches/{first['batch_id']}/replay").json()
        assert (replayed["inserted"], replayed["rejected"]) == (2, 0)
        stored = get(client, "select=id,station,seq&order=id")
        assert [(r["id"], r["station"], r["seq"]) for r in stored] == [
            (1, "A", 1), (2, "A", 0), (3, "Z", 9), (4, "C", 3), (5, "B", 2)]
