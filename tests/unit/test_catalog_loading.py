"""DEPOT_CATALOG names a file or a module; a catalog that cannot load says why, in one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from domain.system import SYSTEM_TABLES
from entrypoints.catalogs import DEFAULT_CATALOG, CatalogNotFound, load_catalog

SMALL = """
    from depot import Catalog

    CATALOG = Catalog()

    @CATALOG.table("notes", group="primary", natural_key=("slug",))
    class Note:
        slug: str
        text: str
"""


def write(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


def test_a_file_path_loads_its_catalog_with_depots_system_tables(tmp_path: Path):
    loaded = load_catalog(str(write(tmp_path, "catalog.py", SMALL)))
    assert loaded.catalog.names == (*SYSTEM_TABLES, "notes", "notes_history", "notes_claims")  # derived
    assert [t.name for t in loaded.catalog.user_tables] == ["notes"]
    assert loaded.migrations_dir == (tmp_path / "migrations").resolve()


def test_a_module_name_loads_and_a_suffix_picks_the_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    package = tmp_path / "shopmod"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write(package, "tables.py", SMALL.replace("CATALOG", "MINE"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_catalog("shopmod.tables").catalog.user_tables[-1].name == "notes"  # the only Catalog in the module
    assert load_catalog("shopmod.tables:MINE").catalog.user_tables[-1].name == "notes"
    with pytest.raises(CatalogNotFound, match="'OTHER' is not a Catalog"):
        load_catalog("shopmod.tables:OTHER")
    assert load_catalog("shopmod.tables", tmp_path / "elsewhere").migrations_dir == (tmp_path / "elsewhere").resolve()


def test_a_missing_file_or_module_is_named(tmp_path: Path):
    with pytest.raises(CatalogNotFound, match="does not exist"):
        load_catalog(str(tmp_path / "nope.py"))
    with pytest.raises(CatalogNotFound, match="'no_such_catalog_module' not found"):
        load_catalog("no_such_catalog_module")


def test_an_error_in_the_catalog_names_the_file_and_line(tmp_path: Path):
    broken = write(tmp_path, "catalog.py", SMALL + "\n    undefined_name\n")
    with pytest.raises(CatalogNotFound, match=r"NameError: name 'undefined_name' is not defined \(.*catalog.py:11\)"):
        load_catalog(str(broken))
    bad_syntax = write(tmp_path, "syntax.py", "def (:\n")
    with pytest.raises(CatalogNotFound, match=r"SyntaxError.*syntax.py:1"):
        load_catalog(str(bad_syntax))


def test_a_declaration_error_is_a_load_error(tmp_path: Path):
    dangling = SMALL.replace("text: str", 'text: Annotated[str, References("missing")]').replace(
        "from depot import Catalog", "from typing import Annotated\n    from depot import Catalog, References")
    with pytest.raises(CatalogNotFound, match="undeclared table 'missing'"):
        load_catalog(str(write(tmp_path, "catalog.py", dangling)))


def test_catalog_py_in_the_working_folder_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert load_catalog().name == DEFAULT_CATALOG  # no catalog.py here: the bundled example
    write(tmp_path, "catalog.py", SMALL)
    loaded = load_catalog()
    assert loaded.name == "./catalog.py" and loaded.catalog.user_tables[-1].name == "notes"
