"""Finding the user's catalog: DEPOT_CATALOG names a file or a module; its migrations sit beside it."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

from domain.schema import Catalog

DEFAULT_CATALOG = "depot.examples.flights.catalog"


class CatalogNotFound(Exception):
    """The catalog named by DEPOT_CATALOG / --catalog cannot be loaded; the message says why."""


@dataclass(frozen=True)
class LoadedCatalog:
    catalog: Catalog
    name: str  # what the user named, for messages
    migrations_dir: Path  # the user's own migration history (may not exist yet)

    @property
    def history(self):  # type: ignore[no-untyped-def]
        """The migration histories of this catalog on PostgreSQL: depot's own, then the catalog's."""
        from adapters.postgres.db import History

        return History(self.catalog, self.migrations_dir)


def load_catalog(spec: str | None = None, migrations_dir: Path | str | None = None) -> LoadedCatalog:
    """`./catalog.py`, `/abs/catalog.py`, `shop.catalog` or `shop.catalog:NAME`.

    Without `:NAME` the module's `CATALOG` is taken, or its only Catalog. A file's folder goes on
    sys.path first, so a catalog can import the modules beside it.
    """
    spec = spec or default_catalog()
    target, _, attribute = spec.partition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module, origin = _load_file(Path(target))
    else:
        module, origin = _load_module(target)
    catalog = _pick(module, attribute, spec)
    folder = Path(migrations_dir) if migrations_dir else origin.parent / "migrations"
    return LoadedCatalog(catalog, spec, folder.resolve())


def default_catalog() -> str:
    """`./catalog.py` when depot runs in a project folder (`depot init` makes one), else the example."""
    return "./catalog.py" if Path("catalog.py").is_file() else DEFAULT_CATALOG


def _load_file(path: Path):  # type: ignore[no-untyped-def]
    path = path.expanduser().resolve()
    if not path.is_file():
        raise CatalogNotFound(f"catalog file {path} does not exist")
    name = f"depot_catalog_{abs(hash(str(path))):x}"
    if name in sys.modules:  # one module per file, so every container of a process shares its tables
        return sys.modules[name], path
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_spec = importlib.util.spec_from_file_location(name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        del sys.modules[name]
        raise CatalogNotFound(f"catalog {path} failed to load: {_describe(error)}") from error
    return module, path


def _load_module(name: str):  # type: ignore[no-untyped-def]
    if "" not in sys.path and "." not in sys.path:  # `shop.catalog` is looked up from where depot runs
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and name.startswith(error.name):
            raise CatalogNotFound(f"catalog module {name!r} not found (from {Path.cwd()})") from error
        raise CatalogNotFound(f"catalog {name} failed to load: {_describe(error)}") from error
    except Exception as error:
        raise CatalogNotFound(f"catalog {name} failed to load: {_describe(error)}") from error
    if module.__file__ is None:
        raise CatalogNotFound(f"catalog {name!r} is a namespace package, not a module")
    return module, Path(module.__file__)


def _pick(module, attribute: str, spec: str) -> Catalog:  # type: ignore[no-untyped-def]
    if attribute:
        found = getattr(module, attribute, None)
        if not isinstance(found, Catalog):
            raise CatalogNotFound(f"{spec}: {attribute!r} is not a Catalog")
        return found
    if isinstance(getattr(module, "CATALOG", None), Catalog):
        return module.CATALOG
    catalogs = [v for v in vars(module).values() if isinstance(v, Catalog)]
    if len(catalogs) != 1:
        raise CatalogNotFound(f"{spec}: name the catalog as {spec}:NAME ({len(catalogs)} Catalog objects found)")
    return catalogs[0]


def _describe(error: BaseException) -> str:
    """One line: the error and where in the user's file it happened."""
    tb = error.__traceback__
    where = ""
    while tb is not None:
        where = f" ({tb.tb_frame.f_code.co_filename}:{tb.tb_lineno})"
        tb = tb.tb_next
    if isinstance(error, SyntaxError) and error.filename:
        where = f" ({error.filename}:{error.lineno})"
    return f"{type(error).__name__}: {error}{where}"
