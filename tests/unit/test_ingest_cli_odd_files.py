"""`depot ingest` with files it cannot read: exit 2 and a one-line reason, never a traceback."""

from __future__ import annotations

import zipfile

import pytest
from typer.testing import CliRunner

from entrypoints.cli import app


def ingest(path):
    return CliRunner().invoke(app, ["ingest", "airlines", str(path), "--storage", "memory"])


def test_a_zip_that_is_not_a_zip_exits_2(tmp_path):
    path = tmp_path / "airlines.zip"
    path.write_text("carrier,name\nAA,American\n")
    result = ingest(path)
    assert result.exit_code == 2, result.output
    assert "not a zip" in result.output and "Traceback" not in result.output
    assert not isinstance(result.exception, zipfile.BadZipFile)


@pytest.mark.parametrize("names", [[], ["a.csv", "b.csv"]])
def test_a_zip_without_exactly_one_file_exits_2(tmp_path, names):
    path = tmp_path / "airlines.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "carrier,name\nAA,American\n")
    result = ingest(path)
    assert result.exit_code == 2, result.output
    assert "exactly one" in result.output


@pytest.mark.parametrize("command", [["tables", "--storage", "bogus"],
                                     ["ingest", "airlines", "x.csv", "--storage", "bogus"]])
def test_bad_settings_exit_2_with_the_reason(command):
    """A bad --storage (or DEPOT_ variable) printed pydantic's traceback and exited 1."""
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 2, result.output
    assert "storage" in result.output and "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
