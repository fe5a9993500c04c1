"""`depot adopt` without a database: PostgreSQL's types, defaults and CHECKs mapped to the declaration
language, the keys and groups it decides, and catalog.py as it writes it (which must load as a catalog,
with what it cannot map as comments where they belong)."""

from __future__ import annotations

import decimal
from pathlib import Path

import pytest

from adapters.postgres.adopt import (
    FoundColumn,
    FoundConstraint,
    FoundIndex,
    FoundTable,
    declare,
    map_check,
    map_default,
    map_type,
    type_sql,
)
from domain.schema import MISSING, Column, ColumnType, References
from domain.system import SYSTEM_TABLES
from entrypoints.adoption import AdoptRefused, parse_natural_keys, render_catalog
from entrypoints.catalogs import load_catalog


@pytest.mark.parametrize(("pg_type", "expected"), [
    ("text", (ColumnType.TEXT, None, None, None, None)),
    ("character varying(120)", (ColumnType.TEXT, 120, None, None, None)),
    ("integer", (ColumnType.INTEGER, None, None, None, None)),
    ("smallint", (ColumnType.INTEGER, None, None, None, None)),
    ("bigint", (ColumnType.BIGINT, None, None, None, None)),
    ("numeric(12,2)", (ColumnType.NUMERIC, None, 12, 2, None)),
    ("numeric", (ColumnType.NUMERIC, None, None, None, None)),
    ("double precision", (ColumnType.FLOAT, None, None, None, None)),
    ("real", (ColumnType.FLOAT, None, None, None, None)),
    ("boolean", (ColumnType.BOOLEAN, None, None, None, None)),
    ("date", (ColumnType.DATE, None, None, None, None)),
    ("timestamp without time zone", (ColumnType.TIMESTAMP, None, None, None, None)),
    ("timestamp(3) with time zone", (ColumnType.TIMESTAMPTZ, None, None, None, None)),
    ("timestamp with time zone", (ColumnType.TIMESTAMPTZ, None, None, None, None)),
    ("uuid", (ColumnType.UUID, None, None, None, None)),
    ("jsonb", (ColumnType.JSON, None, None, None, None)),
    ("json", (ColumnType.JSON, None, None, None, None)),
    ("text[]", (ColumnType.ARRAY, None, None, None, ColumnType.TEXT)),
    ("character varying[]", (ColumnType.ARRAY, None, None, None, ColumnType.TEXT)),
    ("integer[]", (ColumnType.ARRAY, None, None, None, ColumnType.INTEGER)),
])
def test_postgresql_types_map_to_declared_types(pg_type, expected):
    mapped = map_type(pg_type)
    assert (mapped.type, mapped.max_length, mapped.precision, mapped.scale, mapped.item) == expected


@pytest.mark.parametrize("pg_type", ["interval", "bytea", "inet", "time without time zone", "character(3)",
                                     "bigint[]", "numeric[]", "mood", "point", "tsvector"])
def test_types_the_language_has_not_are_not_mapped(pg_type):
    assert map_type(pg_type) is None


@pytest.mark.parametrize("pg_type", ["text", "character varying(7)", "integer", "bigint", "numeric(12,2)", "numeric",
                                     "double precision", "boolean", "date", "timestamp without time zone",
                                     "timestamp with time zone", "uuid", "jsonb", "text[]", "integer[]"])
def test_a_mapped_type_that_needs_no_change_reads_back_as_itself(pg_type):
    """type_sql is what the migration compares with: equal means no ALTER TYPE."""
    mapped = map_type(pg_type)
    column = Column("c", mapped.type, max_length=mapped.max_length, precision=mapped.precision, scale=mapped.scale,
                    item=mapped.item)
    assert type_sql(column) == pg_type
    assert mapped.change is None


@pytest.mark.parametrize(("expression", "column_type", "value"), [
    ("'shop'::character varying", ColumnType.TEXT, "shop"),
    ("'it''s'::text", ColumnType.TEXT, "it's"),
    ("0", ColumnType.INTEGER, 0),
    ("'-3'::integer", ColumnType.INTEGER, -3),
    ("1.5", ColumnType.FLOAT, 1.5),
    ("9.90", ColumnType.NUMERIC, decimal.Decimal("9.90")),
    ("true", ColumnType.BOOLEAN, True),
    ("false", ColumnType.BOOLEAN, False),
])
def test_literal_defaults_become_python_defaults(expression, column_type, value):
    assert map_default(expression, column_type) == value


@pytest.mark.parametrize(("expression", "column_type"), [
    ("now()", ColumnType.TIMESTAMPTZ),
    ("nextval('t_id_seq'::regclass)", ColumnType.INTEGER),
    ("gen_random_uuid()", ColumnType.UUID),
    ("CURRENT_DATE", ColumnType.DATE),
    ("'2020-01-01'::date", ColumnType.DATE),
    ("(1 + 1)", ColumnType.INTEGER),
])
def test_expression_defaults_are_not_mapped(expression, column_type):
    assert map_default(expression, column_type) is MISSING


@pytest.mark.parametrize(("definition", "expected"), [
    ("CHECK ((price >= (0)::numeric))", [("price", "ge", 0)]),
    ("CHECK ((pages > 0))", [("pages", "gt", 0)]),
    ("CHECK ((0 < pages))", [("pages", "gt", 0)]),
    ("CHECK ((lat >= ('-90'::integer)::double precision))", [("lat", "ge", -90)]),
    ("CHECK ((ratio < 1.5))", [("ratio", "lt", 1.5)]),
    ("CHECK (((stars >= 1) AND (stars <= 5)))", [("stars", "ge", 1), ("stars", "le", 5)]),
    ("CHECK ((kind = ANY (ARRAY['shop'::text, 'online'::text])))", [("kind", "choices", ("shop", "online"))]),
    ("CHECK (((format)::text = ANY ((ARRAY['paper''back'::character varying, 'ebook'::character varying])::text[])))",
     [("format", "choices", ("paper'back", "ebook"))]),
    ("CHECK (((code)::text ~ '^[A-Z]{2,8}$'::text))", [("code", "pattern", "[A-Z]{2,8}")]),
    ("CHECK ((\"code\" ~ '^(?:[a-z]+)$'::text))", [("code", "pattern", "[a-z]+")]),  # depot's own wrapping
    ("CHECK ((char_length((name)::text) <= 120))", [("name", "max_length", 120)]),
    ("CHECK ((length(name) <= 40))", [("name", "max_length", 40)]),
])
def test_simple_checks_map_to_markers(definition, expected):
    assert map_check(definition) == expected


@pytest.mark.parametrize("definition", [
    "CHECK ((born > '1000-01-01'::date))",  # a date bound
    "CHECK ((starts < ends))",  # two columns
    "CHECK ((code ~ 'abc'::text))",  # unanchored: a search
    "CHECK (((a > 0) OR (b > 0)))",
    "CHECK ((lower(code) = code))",
    "CHECK ((price >= (0)::numeric)) NOT VALID",  # rows may break it: not a rule depot can promise
])
def test_other_checks_are_not_mapped(definition):
    assert map_check(definition) is None


# --- declare: keys, references, groups, what is left unmapped --------------------------------------------


def col(name, pg_type="text", *, nullable=False, default=None, identity="", serial=False):
    return FoundColumn(name, pg_type, nullable, default, identity, None, None, serial)


def pk(table, *columns):
    return FoundConstraint(f"{table}_pkey", "p", columns, f"PRIMARY KEY ({', '.join(columns)})")


def fk(table, columns, target, target_columns):
    return FoundConstraint(f"{table}_{'_'.join(columns)}_fkey", "f", columns, "FOREIGN KEY ...", target,
                           target_columns)


def table(name, columns, constraints=(), indexes=(), comment=None):
    return FoundTable(name, tuple(columns), tuple(constraints), tuple(indexes), comment)


def shop() -> list[FoundTable]:
    return [
        table("stock", [col("id", "bigint", default="nextval('stock_id_seq'::regclass)", serial=True),
                        col("isbn", "character varying(13)"), col("observed_at", "timestamp without time zone"),
                        col("qty", "integer"), col("note", "interval", nullable=True)],
              [pk("stock", "id"), fk("stock", ("isbn",), "books", ("isbn",)),
               FoundConstraint("stock_isbn_observed_at_key", "u", ("isbn", "observed_at"), "UNIQUE (...)"),
               FoundConstraint("stock_qty_check", "c", ("qty",), "CHECK ((qty >= 0))")]),
        table("books", [col("isbn", "character varying(13)"), col("title"),
                        col("author_id", "integer"), col("format", "character varying(10)",
                                                         default="'paperback'::character varying")],
              [pk("books", "isbn"), fk("books", ("author_id",), "authors", ("id",)),
               FoundConstraint("books_format_check", "c", ("format",),
                               "CHECK (((format)::text = ANY ((ARRAY['paperback'::character varying, "
                               "'ebook'::character varying])::text[])))")]),
        table("authors", [col("id", "integer", identity="d"), col("name", "character varying(120)"),
                          col("born", "date", nullable=True)],
              [pk("authors", "id"), FoundConstraint("authors_born_check", "c", ("born",),
                                                    "CHECK ((born > '1000-01-01'::date))")],
              [FoundIndex("authors_name_idx", ("name",), True, True, False, "CREATE UNIQUE INDEX ...")],
              comment="People who write books."),
        table("visits", [col("id", "integer", default="nextval('visits_id_seq'::regclass)", serial=True),
                         col("at", "timestamp with time zone")], [pk("visits", "id")]),
        table("log", [col("line"), col("at", "timestamp with time zone")]),  # no key at all
    ]


def test_tables_come_in_foreign_key_order_with_keys_groups_and_references():
    adoption = declare(shop(), system_tables=SYSTEM_TABLES)
    names = [d.name for d in adoption.declarations]
    assert names.index("authors") < names.index("books") < names.index("stock")
    by = {d.name: d for d in adoption.declarations}
    # a serial/identity id beside a unique key: depot's surrogate id, the unique key its natural key
    assert (by["authors"].surrogate_id, by["authors"].natural_key, by["authors"].group) == (True, ("name",), "primary")
    assert (by["stock"].surrogate_id, by["stock"].natural_key, by["stock"].group) == (
        True, ("isbn", "observed_at"), "instances")
    assert (by["books"].surrogate_id, by["books"].natural_key, by["books"].group) == (False, ("isbn",), "secondary")
    books = {c.column.name: c.column for c in by["books"].columns}
    assert books["author_id"].reference == References("authors", "id")  # not the target's natural key: named
    assert books["format"].choices == ("paperback", "ebook") and books["format"].default == "paperback"
    stock = {c.column.name: c.column for c in by["stock"].declared}
    assert stock["isbn"].reference == References("books", None) and stock["qty"].ge == 0
    assert "id" not in stock  # depot's surrogate_id declares it


def test_a_surrogate_id_without_a_unique_key_takes_the_natural_key_named_on_the_command_line():
    by = {d.name: d for d in declare(shop(), natural_keys={"visits": ("at",)}).declarations}
    assert (by["visits"].surrogate_id, by["visits"].natural_key) == (True, ("at",))
    unchosen = {d.name: d for d in declare(shop()).declarations}["visits"]
    assert (unchosen.surrogate_id, unchosen.natural_key) == (False, ("id",))
    assert any("--natural-key visits=" in n for n in unchosen.notes)


def test_an_enum_becomes_text_with_its_labels_as_one_of():
    found = [table("stores", [col("code"), FoundColumn("kind", "store_kind", False, "'shop'::store_kind", "", None,
                                                         None, False, ("shop", "online"))], [pk("stores", "code")])]
    (stores,) = declare(found).declarations
    kind = stores.declared[1]
    assert (kind.column.type, kind.column.choices, kind.column.default) == (ColumnType.TEXT, ("shop", "online"), "shop")
    assert kind.notes == ["the adoption migration changes its type: enum store_kind becomes text with a CHECK of "
                          "its labels"]


def test_what_cannot_be_declared_is_said_never_dropped():
    adoption = declare(shop(), natural_keys={"nowhere": ("x",)}, system_tables=SYSTEM_TABLES)
    said = "\n".join(adoption.unmapped())
    assert "stock.note: not mapped: type interval" in said
    assert "authors.born: not mapped: authors_born_check CHECK ((born > '1000-01-01'::date))" in said
    assert "log: not adopted: no primary key and no unique key" in said and "--natural-key log=" in said
    assert "--natural-key nowhere=...: the schema has no table 'nowhere'" in said
    by = {d.name: d for d in adoption.declarations}
    assert not by["log"].adopted


def test_depot_own_tables_and_an_alembic_history_are_named():
    found = [*shop(), table("sources", [col("code")], [pk("sources", "code")]),
             table("alembic_version", [col("version_num", "character varying(32)")])]
    adoption = declare(found, system_tables=SYSTEM_TABLES)
    assert "sources" not in [d.name for d in adoption.declarations]
    said = "\n".join(adoption.unmapped())
    assert "sources: depot's own tables are here already" in said
    assert "alembic_version exists" in said and "RENAME TO" in said


def test_foreign_keys_in_a_cycle_are_left_unmapped_not_lost():
    found = [table("a", [col("id", "integer"), col("b_id", "integer")],
                   [pk("a", "id"), fk("a", ("b_id",), "b", ("id",))]),
             table("b", [col("id", "integer"), col("a_id", "integer")],
                   [pk("b", "id"), fk("b", ("a_id",), "a", ("id",))])]
    adoption = declare(found)
    said = "\n".join(adoption.unmapped())
    assert "form a cycle" in said and "not mapped: foreign key" in said


# --- catalog.py as written -----------------------------------------------------------------------------


def written(tmp_path: Path, **kwargs) -> tuple[str, object]:
    adoption = declare(shop(), system_tables=SYSTEM_TABLES, **kwargs)
    text = render_catalog(adoption, source="postgresql:///shop", date="2026-11-27")
    path = tmp_path / "catalog.py"
    path.write_text(text)
    return text, load_catalog(str(path)).catalog


def test_a_schema_named_like_depots_own_is_adopted_with_depots_tables_beside_it(tmp_path: Path):
    adoption = declare(shop(), system_tables=SYSTEM_TABLES)
    (tmp_path / "catalog.py").write_text(render_catalog(adoption, source="postgresql:///shop", date="2026-11-27",
                                                        schema="depot"))
    catalog = load_catalog(str(tmp_path / "catalog.py")).catalog
    assert (catalog.schema, catalog.system_schema) == ("depot", "depot_system")


def test_the_written_catalog_loads_and_declares_what_the_database_has(tmp_path: Path):
    text, catalog = written(tmp_path, natural_keys={"visits": ("at",)})
    assert [t.name for t in catalog.user_tables] == ["authors", "visits", "books", "stock"]
    authors, stock, books = catalog["authors"], catalog["stock"], catalog["books"]
    assert (authors.primary_key, authors.natural_key, authors.description) == (("id",), ("name",),
                                                                               "People who write books.")
    assert authors.column("name").max_length == 120 and authors.column("born").nullable
    assert stock.column("observed_at").type is ColumnType.TIMESTAMP
    assert [(fk.columns, fk.target, fk.target_columns) for fk in books.hard_foreign_keys][0] == (
        ("author_id",), "authors", ("id",))
    assert books.column("format").default == "paperback"
    assert "instances  has a surrogate `id` and a timestamp column" in text


def test_the_unmapped_are_comments_where_they_belong(tmp_path: Path):
    text, _ = written(tmp_path)
    lines = text.splitlines()
    note = lines.index("    # not mapped: type interval; depot neither reads nor writes it")
    assert lines[note + 1] == "    # note: interval"  # the column's place in its table
    born = next(i for i, line in enumerate(lines) if line.startswith("    born:"))
    assert "authors_born_check" in lines[born - 1] and lines[born - 1].startswith("    # not mapped:")
    assert "# @CATALOG.table(\"log\"" in text
    assert text.count("# not adopted:") == 1  # log, above its commented table
    assert "CATALOG = Catalog()" in text  # no table has a column named like depot's


def test_a_table_with_columns_named_like_depots_moves_depots_aside_for_the_catalog(tmp_path: Path):
    packages = table("packages", [col("name"), col("version"), col("source", nullable=True),
                                  col("created_at", "timestamp with time zone"), col("_depot_source")],
                     [pk("packages", "name")])
    adoption = declare([*shop(), packages], system_tables=SYSTEM_TABLES)
    assert adoption.system_columns == "_depot2_"  # _depot_ is not free: the table has a _depot_source
    assert [d.name for d in adoption.adopted if d.name == "packages"] == ["packages"]
    said = "\n".join(adoption.unmapped())
    assert "packages.created_at, packages.source, packages.version: named like depot's system columns" in said
    text = render_catalog(adoption, source="postgresql:///shop", date="2026-11-27")
    assert 'CATALOG = Catalog(system_columns="_depot2_")' in text
    assert "depot adds its system columns (_depot2_source, _depot2_batch_id, _depot2_version" in text
    path = tmp_path / "catalog.py"
    path.write_text(text)
    spec = load_catalog(str(path)).catalog["packages"]
    assert spec.column_names == ("name", "version", "source", "created_at", "_depot_source", "_depot2_source",
                                 "_depot2_batch_id", "_depot2_version", "_depot2_created_at", "_depot2_updated_at")
    assert not spec.column("version").system and spec.column("_depot2_version").system


def test_natural_key_options_are_read_or_refused():
    assert parse_natural_keys(["reviews=isbn, reviewer", "visits=at"]) == {"reviews": ("isbn", "reviewer"),
                                                                           "visits": ("at",)}
    for bad in ["reviews", "=isbn", "reviews="]:
        with pytest.raises(AdoptRefused):
            parse_natural_keys([bad])


def test_foreign_key_options_the_language_lacks_are_said_and_kept():
    found = shop()
    books = next(t for t in found if t.name == "books")
    cascading = FoundConstraint("books_author_id_fkey", "f", ("author_id",),
                                "FOREIGN KEY (author_id) REFERENCES authors(id) ON DELETE CASCADE", "authors", ("id",))
    found[found.index(books)] = table("books", books.columns, [*[c for c in books.constraints if c.kind != "f"],
                                                                cascading])
    said = "\n".join(declare(found).unmapped())
    assert "books: foreign key books_author_id_fkey: ON DELETE CASCADE kept in the database" in said


# --- the command: what it refuses, with exit 2 and no traceback ----------------------------------------------


@pytest.mark.parametrize(("args", "reason"), [
    (["--natural-key", "reviews"], "write TABLE=col1,col2"),
    ([], "cannot read the database"),
])
def test_adopt_refuses_with_the_reason(tmp_path: Path, args, reason):
    from typer.testing import CliRunner

    from entrypoints.cli import app as cli

    result = CliRunner().invoke(cli, ["adopt", "--database-url", "postgresql://nobody@127.0.0.1:1/none",
                                      "--out", str(tmp_path / "new"), *args])
    assert result.exit_code == 2, result.output
    assert reason in result.output and "Traceback" not in result.output
    assert not (tmp_path / "new").exists()  # nothing written


def test_adopt_never_writes_into_a_folder_that_has_files(tmp_path: Path):
    from typer.testing import CliRunner

    from entrypoints.cli import app as cli

    (tmp_path / "notes.txt").write_text("mine")
    result = CliRunner().invoke(cli, ["adopt", "--database-url", "postgresql://nobody@127.0.0.1:1/none",
                                      "--out", str(tmp_path)])
    assert result.exit_code == 2 and "is not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
