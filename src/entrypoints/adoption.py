"""`depot adopt`'s output: catalog.py written as a person would write it, and the run that writes it with
its first migration. The database is read by adapters/postgres/adopt.py."""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from adapters.postgres.adopt import (
    Adoption,
    Declaration,
    DeclaredColumn,
    adoption_migration,
    declare,
    inspect_schema,
    other_relations,
)
from adapters.postgres.adopt_views import ViewDeclaration, create_views, declare_views, drop_views, inspect_views
from adapters.postgres.db import SYSTEM_LINEAGE, make_engine
from adapters.postgres.tables import build_metadata
from domain.schema import MISSING, SYSTEM_SCHEMA, Column, ColumnType, SystemColumns
from domain.system import SYSTEM_TABLES
from entrypoints.catalogs import CatalogNotFound, load_catalog

_PYTHON = {
    ColumnType.TEXT: "str", ColumnType.INTEGER: "int", ColumnType.BIGINT: "int", ColumnType.FLOAT: "float",
    ColumnType.NUMERIC: "decimal.Decimal", ColumnType.BOOLEAN: "bool", ColumnType.DATE: "dt.date",
    ColumnType.TIMESTAMPTZ: "dt.datetime", ColumnType.TIMESTAMP: "dt.datetime", ColumnType.UUID: "uuid.UUID",
    ColumnType.JSON: "dict",
}
_MODULES = {"decimal.Decimal": "decimal", "dt.date": "datetime", "dt.datetime": "datetime", "uuid.UUID": "uuid"}

HEADER = '''"""The catalog of the tables adopted from {source} by `depot adopt` on {date}.

Edit it as your own: it is. Each table got its group by a rule of thumb, which you may change:
  primary    references no other table (independent reference data);
  secondary  references other tables;
  instances  has a surrogate `id` and a timestamp column (time-stamped observations).
depot adds its system columns ({system}) to every table;
the first migration in migrations/ adds them to the tables as they are, keeping every row.
Comments starting "# not mapped" or "# not adopted" are what depot could not declare; it stays in
the database as it is. `depot adopt` printed them too.
"""
'''


def render_catalog(adoption: Adoption, *, source: str, date: str, views: Sequence[ViewDeclaration] = (),
                   schema: str = "public") -> str:
    """catalog.py: the imports it needs, then each table in foreign-key order, then the views."""
    bodies = [_render_table(d) for d in adoption.declarations] + [_render_view(v) for v in views]
    text = "\n\n".join(bodies)
    names = sorted({m for m in re.findall(r"\b(BigInt|Doc|ForeignKey|Ge|Gt|Le|Lt|MaxLen|Naive|Numeric|OneOf|"
                                          r"Pattern|References)\(", _code_only(text))})
    modules = sorted({mod for py, mod in _MODULES.items() if py in _code_only(text)})
    imports = ["from __future__ import annotations", ""]
    imports += ["import datetime as dt" if m == "datetime" else f"import {m}" for m in modules]
    if any("Annotated[" in line for line in _code_only(text).splitlines()):
        imports.append("from typing import Annotated")
    imports += ["", f"from depot import {', '.join(['Catalog', *names])}"]
    notes = "".join(f"# {line}\n" for line in adoption.notes)
    prefix = adoption.system_columns
    args = [f"system_columns={_py(prefix)}"] if prefix is not None else []
    args += [f"schema={_py(schema)}"] if schema != "public" else []
    # depot's own tables cannot share the adopted schema: they get one beside it
    args += [f"system_schema={_py(SYSTEM_SCHEMA + '_system')}"] if schema == SYSTEM_SCHEMA else []
    catalog = f"CATALOG = Catalog({', '.join(args)})" if prefix is None else (
        "# Some tables have columns named like depot's system columns: depot's take a prefix instead.\n"
        f"CATALOG = Catalog({', '.join(args)})")
    header = HEADER.format(source=source, date=date, system=", ".join(SystemColumns.of(prefix).names))
    return (header + "\n" + "\n".join(imports) + "\n\n" + notes
            + ("\n" if notes else "") + catalog + "\n\n\n" + text)


def _code_only(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def _render_table(d: Declaration) -> str:
    lines = [f"# {note}" for note in d.notes]
    args = [_py(d.name), f"group={_py(d.group)}", f"natural_key={_py(d.natural_key)}"]
    if d.surrogate_id:
        args.append("surrogate_id=True")
    if d.unique:
        args.append(f"unique={_py(tuple(d.unique))}")
    if d.references:
        refs = ", ".join(f"ForeignKey({_py(fk.columns)}, {_py(fk.target)}, {_py(fk.target_columns)})"
                         for fk in d.references)
        args.append(f"references=({refs},)")
    decorator = f"@CATALOG.table({', '.join(args)})"
    if len(decorator) > 110:
        decorator = f"@CATALOG.table(\n    {args[0]},\n" + "".join(f"    {a},\n" for a in args[1:]) + ")"
    body = [*decorator.splitlines(), f"class {_class_name(d.name)}:"]
    if d.description:
        body.append(f"    {_docstring(d.description)}")
        if d.columns:
            body.append("")
    for column in d.columns:
        body += _render_column(column)
    if not d.declared and not d.description:
        body.append("    pass")
    if not d.adopted:
        body = ["# " + line if line else "#" for line in body]
    return "\n".join([*lines, *body]) + "\n"


def _render_view(v: ViewDeclaration) -> str:
    """@CATALOG.view(...): read-only, never created by depot; its References are the lineage adopt found."""
    lines = [f"# {note}" for note in v.notes]
    args = [_py(v.name), f"key={_py(v.key)}"] + (["materialized=True"] if v.materialized else [])
    if v.references:
        refs = ", ".join(f"ForeignKey({_py(fk.columns)}, {_py(fk.target)}, {_py(fk.target_columns)})"
                         for fk in v.references)
        args.append(f"references=({refs},)")
    decorator = f"@CATALOG.view({', '.join(args)})"
    if len(decorator) > 110:
        decorator = f"@CATALOG.view(\n    {args[0]},\n" + "".join(f"    {a},\n" for a in args[1:]) + ")"
    body = [*decorator.splitlines(), f"class {_class_name(v.name)}:"]
    if v.description:
        body += [f"    {_docstring(v.description)}", ""]
    for column in v.columns:
        body += _render_column(column)
    if not v.declared and not v.description:
        body.append("    pass")
    return "\n".join([*lines, *body]) + "\n"


def _render_column(declared: DeclaredColumn) -> list[str]:
    c = declared.column
    lines = [f"    # {note}" for note in declared.notes]
    if not declared.mapped:  # where it stands in the table, so the reader sees the whole table
        return [*lines, f"    # {c.name}: {declared.pg_type}"]
    python = _python_type(c)
    markers = _markers(c)
    if c.nullable:
        python += " | None"
    hint = f"Annotated[{python}, {', '.join(markers)}]" if markers else python
    default = "" if c.default is MISSING else f" = {_literal(c.default)}"
    return [*lines, f"    {c.name}: {hint}{default}"]


def _python_type(c: Column) -> str:
    if c.type is ColumnType.ARRAY:
        return f"list[{_PYTHON[c.item]}]" if c.item is not None else "list"
    return _PYTHON[c.type]


def _markers(c: Column) -> list[str]:
    markers = []
    if c.type is ColumnType.BIGINT:
        markers.append("BigInt()")
    if c.type is ColumnType.TIMESTAMP:
        markers.append("Naive()")
    if c.type is ColumnType.NUMERIC and c.precision is not None:
        markers.append(f"Numeric({c.precision}, {c.scale or 0})")
    if c.max_length is not None:
        markers.append(f"MaxLen({c.max_length})")
    if c.reference is not None:
        args = [_py(c.reference.table)] + ([_py(c.reference.column)] if c.reference.column else [])
        markers.append(f"References({', '.join(args)})")
    if c.pattern is not None:
        markers.append(f"Pattern({_regex(c.pattern)})")
    if c.choices is not None:
        markers.append(f"OneOf({_py(tuple(c.choices))})")
    for name in ("ge", "le", "gt", "lt"):
        if getattr(c, name) is not None:
            markers.append(f"{name.capitalize()}({getattr(c, name)!r})")
    if c.description:
        markers.append(f"Doc({_py(c.description)})")
    return markers


def _regex(regex: str) -> str:
    """A raw string where one can hold it, as people write patterns."""
    if '"' not in regex and not regex.endswith("\\") and "\n" not in regex:
        return f'r"{regex}"'
    return repr(regex)


def _literal(value: object) -> str:
    if isinstance(value, decimal.Decimal):
        return f"decimal.Decimal({_py(str(value))})"
    return _py(value)


def _py(value: object) -> str:
    """repr() with double-quoted strings, as depot's own code and its users' catalogs are written."""
    if isinstance(value, str):
        if '"' in value:
            return repr(value)
        return '"' + repr("'" + value)[2:-1].replace("\\'", "'") + '"'
    if isinstance(value, tuple):
        items = ", ".join(_py(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    return repr(value)


def _docstring(text: str) -> str:
    if '"""' in text or text.endswith(("\\", '"')):
        return repr(text)
    return f'"""{text}"""'


def _class_name(table: str) -> str:
    name = "".join(part[:1].upper() + part[1:] for part in table.split("_") if part)
    return name if name[:1].isalpha() else f"T{name}"


# --- the run ----------------------------------------------------------------------------------------


class AdoptRefused(Exception):
    """depot adopt cannot run as asked; the message says why (exit 2)."""


@dataclass(frozen=True)
class AdoptResult:
    catalog: Path
    migration: Path
    adopted: tuple[str, ...]
    unmapped: tuple[str, ...]
    views: tuple[str, ...] = ()


def parse_natural_keys(values: list[str]) -> dict[str, tuple[str, ...]]:
    """--natural-key TABLE=col1,col2 (repeated)."""
    keys = {}
    for value in values:
        table, sep, columns = value.partition("=")
        cols = tuple(c.strip() for c in columns.split(",") if c.strip())
        if not sep or not table.strip() or not cols:
            raise AdoptRefused(f"--natural-key {value!r}: write TABLE=col1,col2")
        keys[table.strip()] = cols
    return keys


def adopt(database_url: str, out: Path, *, schema: str = "public",
          natural_keys: dict[str, tuple[str, ...]] | None = None) -> AdoptResult:
    """Read the database, write out/catalog.py and out/migrations/<first revision>; touch nothing in the database."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AdoptRefused(f"{out} is not empty; adopt writes catalog.py and migrations/ into an empty or new folder")
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise AdoptRefused(f"--schema {schema!r}: depot serves schemas named in lower-case letters, digits and "
                           "underscores (rename it: ALTER SCHEMA ... RENAME TO ...)")
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as connection:
            found = inspect_schema(connection, schema)
            views = inspect_views(connection, schema)
            # The views are adopted (adopt_views.py): other_relations' notes stay for foreign tables.
            others = [n for n in other_relations(connection, schema)
                      if n.split(":", 1)[0] not in {v.name for v in views}]
    except sa.exc.SQLAlchemyError as error:
        raise AdoptRefused(f"cannot read the database: {str(error.orig or error).strip()}") from None
    finally:
        engine.dispose()
    if not found:
        raise AdoptRefused(f"schema {schema!r} has no tables to adopt")
    adoption = declare(found, natural_keys, SYSTEM_TABLES)
    adoption.notes.extend(others)
    if schema != "public":
        adoption.notes.append(f"the tables are in schema {schema!r}: Catalog(schema={schema!r}) puts it first on the "
                              "search_path of depot's connections; depot's own tables (sources, ingest_batches, "
                              "rejected_rows) are made in the schema 'depot', apart from them "
                              "(Catalog(system_schema=...) names another)")
    if not adoption.adopted:
        raise AdoptRefused("no table can be adopted:\n  " + "\n  ".join(adoption.unmapped()))
    view_declarations = declare_views(views, adoption.declarations)
    now = dt.datetime.now(dt.UTC)
    source = re.sub(r"//[^@/]*@", "//", database_url)  # never write a password into a file
    out.mkdir(parents=True, exist_ok=True)
    (out / "migrations").mkdir()
    catalog_path = out / "catalog.py"
    catalog_path.write_text(render_catalog(adoption, source=f"{source} (schema {schema})",
                                           date=now.strftime("%Y-%m-%d"), views=view_declarations, schema=schema),
                            encoding="utf-8")
    # The migration derives from the catalog just written, as `depot migrate` will read it: names,
    # types and checks then agree by construction.
    try:
        catalog = load_catalog(str(catalog_path)).catalog
    except CatalogNotFound as error:  # a declaration adopt wrote that depot refuses: say so, keep the file to read
        raise AdoptRefused(f"the catalog.py written does not load, a fault of depot adopt: {error}") from None
    metadata = build_metadata(catalog)
    revision = "adopt_0001"
    migration = out / "migrations" / f"{now:%Y_%m_%d_%H%M}_{revision}_adopt_the_existing_tables.py"
    migration.write_text(adoption_migration(
        # depot_0001 makes sources and ingest_batches, which the system columns reference.
        adoption, found, metadata, revision=revision, depends_on=f"{SYSTEM_LINEAGE}_0001",
        message=f"adopt the existing tables of {schema}", drop_views=drop_views(views),
        create_views=create_views(views)), encoding="utf-8")
    return AdoptResult(catalog_path, migration, tuple(d.name for d in adoption.adopted),
                       tuple(adoption.unmapped()) + tuple(f"{v.name}: {n}" for v in view_declarations for n in v.notes),
                       tuple(v.name for v in view_declarations))
