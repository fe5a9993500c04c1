"""`depot ingest` on the in-memory store: report printed, exit code by outcome."""

from __future__ import annotations

import json
import zipfile

from typer.testing import CliRunner

from entrypoints.cli import app


def test_ingest_a_zipped_csv_prints_the_report(tmp_path):
    data = tmp_path / "airlines.csv"
    data.write_text("carrier,name\nAA,American\nBB,NA\n")
    with zipfile.ZipFile(tmp_path / "airlines.zip", "w") as archive:
        archive.write(data, "airlines.csv")
    result = CliRunner().invoke(app, ["ingest", "airlines", str(tmp_path / "airlines.zip"), "--storage", "memory",
                                      "--csv-null", "NA"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index("{"):])
    assert (report["inserted"], report["rejected"], report["status"]) == (1, 1, "completed")


def test_a_failed_atomic_batch_exits_non_zero(tmp_path):
    data = tmp_path / "airlines.ndjson"
    data.write_text('{"carrier": "AA", "name": "American"}\n{"carrier": "bad!"}\n')
    result = CliRunner().invoke(app, ["ingest", "airlines", str(data), "--storage", "memory", "--mode", "atomic"])
    assert result.exit_code == 1
    assert '"status": "failed"' in result.stdout


def test_unknown_source_exits_2(tmp_path):
    data = tmp_path / "airlines.json"
    data.write_text('[{"carrier": "AA", "name": "American"}]')
    result = CliRunner().invoke(app, ["ingest", "airlines", str(data), "--storage", "memory", "--source", "x"])
    assert result.exit_code == 2


def test_ingest_reads_gzip_and_parquet_files(tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "a.csv.gz").write_bytes(gzip.compress(b"carrier,name\nAA,American\n"))
    (tmp_path / "b.ndjson.gz").write_bytes(gzip.compress(b'{"carrier": "UA", "name": "United"}\n'))
    pq.write_table(pa.table({"carrier": ["DL", "B6"], "name": ["Delta", "JetBlue"]}), tmp_path / "c.parquet")
    for name, inserted in (("a.csv.gz", 1), ("b.ndjson.gz", 1), ("c.parquet", 2)):
        result = CliRunner().invoke(app, ["ingest", "airlines", str(tmp_path / name), "--storage", "memory"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout[result.stdout.index("{"):])["inserted"] == inserted



def test_ingest_reads_a_json_file_at_its_sources_record_path(tmp_path, monkeypatch):
    from entrypoints import cli
    from service_layer import services

    made = cli._container(storage="memory")
    services.create_rows(made.uow(), "sources", [{"code": "feed", "name": "Feed", "profile": {
        "record_path": "data.items", "columns": {"Code": "carrier"}}}])
    monkeypatch.setattr(cli, "_container", lambda **_: made)
    data = tmp_path / "airlines.json"
    data.write_text('{"data": {"items": [{"Code": "AA", "name": "American"}]}}')
    result = CliRunner().invoke(app, ["ingest", "airlines", str(data), "--source", "feed"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["inserted"] == 1
